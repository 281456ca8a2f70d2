/**
 * Reads the `exp` claim (Unix seconds) of a JWT without verifying it: the client only uses it to
 * refresh the token before the hub closes the stream at expiry. Returns undefined for anything
 * that is not a JWT with a numeric `exp`.
 */
export function tokenExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  const payload = parts[1];
  if (payload === undefined) return undefined;
  try {
    const json = decodeBase64Url(payload);
    const claims: unknown = JSON.parse(json);
    if (typeof claims === 'object' && claims !== null && 'exp' in claims) {
      const exp = (claims as { exp: unknown }).exp;
      return typeof exp === 'number' && Number.isFinite(exp) ? exp : undefined;
    }
  } catch {
    return undefined;
  }
  return undefined;
}

function decodeBase64Url(input: string): string {
  const base64 = input.replace(/-/g, '+').replace(/_/g, '/');
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}
