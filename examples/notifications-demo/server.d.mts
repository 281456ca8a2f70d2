import type { IncomingMessage, ServerResponse } from 'node:http';

export const USER: string;

export interface DemoBackend {
  handle(req: IncomingMessage, res: ServerResponse): void;
  orders: Array<{ id: string; item: string; status: string }>;
  start(): void;
  stop(): void;
}

export function createDemoBackend(options: {
  hubUrl: string;
  publishKey: string;
  secret: string;
  staticDir: string;
  speed?: number;
}): DemoBackend;
