/** The demo's events: what its backend publishes to Herald. */
export type OrderStatus = 'placed' | 'paid' | 'shipped' | 'delivered';

export interface Order {
  id: string;
  item: string;
  status: OrderStatus;
}

export interface FeedItem {
  id: number;
  text: string;
  at: number;
}

export type Events = {
  order_update: { orderId: string; status: OrderStatus };
  notification: { title: string; body?: string };
  job_progress: { jobId: string; percent?: number; stage?: string; status?: 'running' | 'done' | 'failed'; message?: string };
  feed_item: FeedItem;
  /** The user's unread notifications: retained, so the badge is right as soon as a page opens. */
  unread: { count: number };
};
