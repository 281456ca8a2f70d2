// An Express app that signs its users in with its own session cookie — and lets Herald open
// their streams from that same cookie. No token endpoint, no JWT code: the hub calls one route
// (`POST /herald/auth`, the session hook) with the browser's Cookie header, and the session
// middleware that already sets `req.user` for every other route answers it.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import session from 'express-session';
import { HeraldPublisher } from '@herald/server';

const HERE = dirname(fileURLToPath(import.meta.url));
/** The built `@herald/client` (its `dist/`), served to the page as ES modules. */
const CLIENT_DIST = dirname(fileURLToPath(import.meta.resolve('@herald/client')));

/** The topic every signed-in user may follow (the page subscribes to it). */
export const NEWS_TOPIC = 'news';

/**
 * @param {{ hubUrl: string, publishKey: string, sessionSecret: string }} options
 *   hubUrl: the hub as the browser reaches it (also used to publish);
 *   publishKey: one of the hub's `--publish-key`s.
 */
export function createApp({ hubUrl, publishKey, sessionSecret }) {
  const herald = new HeraldPublisher({ url: hubUrl, key: publishKey });
  const app = express();

  // 1. The app's own sign-in: a session cookie, and `req.user` set from it for every route
  //    (what passport or your own middleware does).
  app.use(
    session({
      name: 'sid',
      secret: sessionSecret,
      resave: false,
      saveUninitialized: false,
      // SameSite=Lax: sent to the hub too when it runs on the same site (another port of the
      // same host, or hub.example.com next to app.example.com with a cookie for example.com).
      cookie: { httpOnly: true, sameSite: 'lax' },
    }),
  );
  app.use((req, _res, next) => {
    req.user = req.session.user ?? null;
    next();
  });

  app.post('/login', express.urlencoded({ extended: false }), (req, res, next) => {
    const name = String(req.body?.username ?? '').trim();
    if (!/^[\w.-]{1,64}$/.test(name)) return res.status(400).send('a username: letters, digits, _ . -');
    // A new session id at sign-in (no session fixation).
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = { id: name };
      req.session.save((err2) => (err2 ? next(err2) : res.redirect('/')));
    });
  });

  app.post('/logout', (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.clearCookie('sid').redirect('/')));
  });

  // 2. The session hook: `herald serve --auth-url http://<this app>/herald/auth`. The hub sends
  //    the browser's Cookie (so `req.user` is set as for any request) and the requested topics.
  //    Keep this route reachable from the hub only (not through your public proxy).
  app.post('/herald/auth', express.json(), (req, res) => {
    if (!req.user) return res.sendStatus(401); // no session: the browser gets 401
    res.json({
      user: req.user.id, // events published to this user reach this stream
      topics: [NEWS_TOPIC, `users/${req.user.id}/**`], // what the stream may subscribe to
      expiresIn: 3600, // the stream ends after an hour; the client reconnects with the cookie
    });
  });

  // 3. Publishing from the backend, with the publish key (@herald/server).
  app.post('/api/notify-me', express.json(), async (req, res, next) => {
    if (!req.user) return res.sendStatus(401);
    try {
      const title = String(req.body?.title ?? 'Hello from the backend');
      const id = await herald.sendToUser(req.user.id, 'notification', { title, at: Date.now() });
      res.json({ id });
    } catch (error) {
      next(error);
    }
  });

  app.post('/api/news', express.json(), async (req, res, next) => {
    if (!req.user) return res.sendStatus(401);
    try {
      const headline = String(req.body?.headline ?? '').slice(0, 200) || 'Something happened';
      const id = await herald.toTopic(NEWS_TOPIC, 'news', { headline, by: req.user.id });
      res.json({ id });
    } catch (error) {
      next(error);
    }
  });

  // The page: who is signed in, and where the hub is.
  app.get('/api/me', (req, res) => {
    res.json({ user: req.user?.id ?? null, hubUrl, topic: NEWS_TOPIC });
  });
  app.use('/vendor/herald-client', express.static(CLIENT_DIST));
  app.use(express.static(join(HERE, 'public')));

  return app;
}
