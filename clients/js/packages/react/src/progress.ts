import type { EventMeta, HeraldClient } from '@herald/client';

/** The event name `useProgress` listens to by default. */
export const PROGRESS_EVENT = 'job_progress';

export type ProgressStatus = 'idle' | 'running' | 'done' | 'failed';

/**
 * The `data` of a `job_progress` event, published to the user who started the job:
 *
 * ```json
 * {"event": "job_progress", "user": "user_123",
 *  "data": {"jobId": "import-42", "percent": 40, "stage": "validating rows", "status": "running"}}
 * ```
 */
export interface ProgressPayload {
  jobId: string;
  /** 0–100; clamped. Omitted = unchanged. */
  percent?: number;
  /** Human-readable step: "uploading", "validating rows". Omitted = unchanged. */
  stage?: string;
  /** Default `running`. `done` implies percent 100. */
  status?: 'running' | 'done' | 'failed';
  /** Free text, e.g. "1200 of 3000 rows". */
  message?: string;
  /** Why it failed, with `status: "failed"`. */
  error?: string;
}

export interface JobProgress {
  readonly status: ProgressStatus;
  readonly percent: number;
  readonly stage: string | undefined;
  readonly message: string | undefined;
  readonly error: string | undefined;
  readonly done: boolean;
  readonly failed: boolean;
  /** `Date.now()` of the last update, or undefined while idle. */
  readonly updatedAt: number | undefined;
}

export const IDLE_PROGRESS: JobProgress = Object.freeze({
  status: 'idle',
  percent: 0,
  stage: undefined,
  message: undefined,
  error: undefined,
  done: false,
  failed: false,
  updatedAt: undefined,
});

const MAX_JOBS = 200;

export class ProgressStore {
  private readonly jobs = new Map<string, JobProgress>();
  private readonly listeners = new Set<() => void>();

  constructor(client: HeraldClient<Record<string, unknown>>, event: string) {
    // A store made after the stream opened starts from the latest event (e.g. the retained one).
    // `onLatest`: each event, and (cross-tab) the leader's latest one when a follower joins.
    const fromLatest = (): void => {
      const latest = client.latest(event);
      if (latest) this.apply(latest.data, latest.meta);
    };
    fromLatest();
    client.onLatest(event, fromLatest);
  }

  private apply(payload: unknown, meta: EventMeta): void {
    if (typeof payload !== 'object' || payload === null) return;
    const p = payload as Partial<ProgressPayload>;
    if (typeof p.jobId !== 'string') return;
    const prev = this.jobs.get(p.jobId) ?? IDLE_PROGRESS;
    const status = p.status === 'done' || p.status === 'failed' ? p.status : 'running';
    let percent = typeof p.percent === 'number' && Number.isFinite(p.percent) ? p.percent : prev.percent;
    percent = Math.max(0, Math.min(100, percent));
    if (status === 'done') percent = 100;
    const next: JobProgress = Object.freeze({
      status,
      percent,
      stage: typeof p.stage === 'string' ? p.stage : prev.stage,
      message: typeof p.message === 'string' ? p.message : prev.message,
      error: typeof p.error === 'string' ? p.error : status === 'failed' ? prev.error : undefined,
      done: status === 'done',
      failed: status === 'failed',
      updatedAt: meta.receivedAt,
    });
    this.jobs.delete(p.jobId);
    this.jobs.set(p.jobId, next);
    if (this.jobs.size > MAX_JOBS) {
      const oldest = this.jobs.keys().next().value;
      if (oldest !== undefined) this.jobs.delete(oldest);
    }
    for (const l of [...this.listeners]) l();
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  get(jobId: string): JobProgress {
    return this.jobs.get(jobId) ?? IDLE_PROGRESS;
  }
}

const stores = new WeakMap<object, Map<string, ProgressStore>>();

export function getProgressStore(client: HeraldClient<Record<string, unknown>>, event: string): ProgressStore {
  let byEvent = stores.get(client);
  if (!byEvent) {
    byEvent = new Map();
    stores.set(client, byEvent);
  }
  let store = byEvent.get(event);
  if (!store) {
    store = new ProgressStore(client, event);
    byEvent.set(event, store);
  }
  return store;
}
