import { createClient } from '@herald/client';
import { HeraldProvider } from '@herald/react';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App';
import type { Events } from './events';
import './styles.css';

async function start(): Promise<void> {
  const config = (await (await fetch('/api/config')).json()) as { hub: string; user: string };
  const client = createClient<Events>({
    url: config.hub,
    topics: ['public/feed'],
    // The app's own session endpoint mints the short-lived subscriber JWT.
    getToken: async () => ((await (await fetch('/api/token')).json()) as { token: string }).token,
    // The tabs of the demo share one stream (the leader tab's); a tab that joins it starts from
    // the leader's latest values (badge, import, feed: the retained ones). With ?solo, every tab
    // opens its own stream and gets the retained values from the hub.
    crossTab: !new URLSearchParams(location.search).has('solo'),
  });
  const root = document.getElementById('root');
  if (!root) return;
  createRoot(root).render(
    <StrictMode>
      <HeraldProvider client={client}>
        <App user={config.user} />
      </HeraldProvider>
    </StrictMode>,
  );
}

void start();
