/**
 * The signed-in session. The access token lives in memory only (never localStorage or
 * sessionStorage); the refresh token is an HttpOnly cookie the page cannot read, sent by the
 * browser to /api/auth/refresh and /api/auth/logout only. So a reload, or a second tab, restores
 * the session by refreshing with the cookie (`restore()`), and every tab renews its access token a
 * minute before it expires.
 *
 * Refresh tokens rotate, and presenting a spent one ends the whole session. Tabs therefore never
 * refresh at the same time: a refresh runs under a Web Lock shared by the tabs, and its answer is
 * posted on a BroadcastChannel so the others adopt it instead of refreshing again (a tab that got
 * the lock after another's refresh sends the cookie that refresh set, which is still valid).
 * Sign-out is posted too: every tab leaves at once.
 */
import type { components } from "../api/schema";

export type SessionRead = components["schemas"]["SessionRead"];
type TokenPair = components["schemas"]["TokenPair"];
type MeRead = components["schemas"]["MeRead"];

export interface Session {
  accessToken: string;
  /** When the access token stops working (ms since the epoch). */
  expiresAt: number;
  /** When this tab (or the tab that shared it) got the token (ms since the epoch). */
  obtainedAt: number;
  user: SessionRead["user"];
  organization: SessionRead["organization"];
  role: SessionRead["role"];
}

type Listener = () => void;
type Message = { type: "session"; session: Session } | { type: "signed-out" };

/** Sent with every API call: the auth service answers sessions with the refresh cookie. */
export const CLIENT_HEADERS = { "x-tidewater-client": "web" } as const;
export const CSRF_COOKIE = "tidewater_csrf";
const CHANNEL = "tidewater-session";
const LOCK = "tidewater-session-refresh";
/** Renew this long before the access token expires (a quarter of its lifetime if that is shorter). */
export const RENEW_EARLY_MS = 60_000;

let current: Session | null = null;
let timer: ReturnType<typeof setTimeout> | undefined;
let inflight: Promise<Session | null> | null = null;
const listeners = new Set<Listener>();
const channel: BroadcastChannel | null =
  typeof BroadcastChannel === "undefined" ? null : new BroadcastChannel(CHANNEL);

function emit(): void {
  for (const listener of listeners) listener();
}

/** How long before its expiry a session is renewed: a minute, or a quarter of a short lifetime. */
function early(session: Session): number {
  return Math.min(RENEW_EARLY_MS, (session.expiresAt - session.obtainedAt) / 4);
}

/** Whether the session is good for a while yet (no need to renew it now). */
export function fresh(session: Session | null, now: number = Date.now()): session is Session {
  return session !== null && session.expiresAt - now > early(session);
}

function schedule(): void {
  if (timer !== undefined) clearTimeout(timer);
  timer = undefined;
  if (!current) return;
  const wait = Math.max(current.expiresAt - Date.now() - early(current), 1_000);
  timer = setTimeout(() => {
    void renew();
  }, wait);
}

function adopt(session: Session | null): void {
  current = session;
  schedule();
  emit();
}

function post(message: Message): void {
  channel?.postMessage(message);
}

if (channel) {
  channel.onmessage = (event: MessageEvent<Message>) => {
    const message = event.data;
    if (message.type === "signed-out") adopt(null);
    else if (!current || message.session.expiresAt >= current.expiresAt) {
      adopt(message.session);
    }
  };
}

export function sessionFrom(answer: SessionRead, now: number = Date.now()): Session {
  return {
    accessToken: answer.access_token,
    expiresAt: now + answer.expires_in * 1000,
    obtainedAt: now,
    user: answer.user,
    organization: answer.organization,
    role: answer.role,
  };
}

/** The CSRF token to repeat in X-CSRF-Token (the auth service's readable cookie), if any. */
export function csrfToken(cookies: string = typeof document === "undefined" ? "" : document.cookie): string {
  for (const part of cookies.split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(value.join("="));
  }
  return "";
}

function cookieCall(path: string): Promise<Response> {
  return globalThis.fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json", ...CLIENT_HEADERS, "x-csrf-token": csrfToken() },
    body: "{}",
  });
}

/** Trade the refresh cookie for an access token; who and where come from the session held, or /me. */
async function refreshByCookie(held: Session | null): Promise<Session | null> {
  if (!csrfToken()) return null; // no cookie session in this browser
  const asked = Date.now();
  const response = await cookieCall("/api/auth/refresh");
  if (!response.ok) return null;
  const pair = (await response.json()) as TokenPair;
  const base = {
    accessToken: pair.access_token,
    expiresAt: asked + pair.expires_in * 1000,
    obtainedAt: asked,
  };
  if (held) return { ...held, ...base };
  const me = await globalThis.fetch("/api/auth/me", {
    headers: { authorization: `Bearer ${pair.access_token}`, ...CLIENT_HEADERS },
  });
  if (!me.ok) return null;
  const who = (await me.json()) as MeRead;
  return { ...base, user: who.user, organization: who.organization, role: who.role };
}

function withLock<T>(work: () => Promise<T>): Promise<T> {
  const locks = typeof navigator === "undefined" ? undefined : navigator.locks;
  return locks ? (locks.request(LOCK, work) as Promise<T>) : work();
}

/**
 * Renew the access token: one refresh at a time across tabs. A tab that waited for the lock while
 * another refreshed takes the session that came over the channel instead of refreshing again.
 */
function renew(): Promise<Session | null> {
  if (inflight) return inflight;
  const waitingSince = Date.now();
  inflight = withLock(async () => {
    const now = Date.now();
    if (fresh(current, now) && current.obtainedAt >= waitingSince) return current;
    let next: Session | null = null;
    try {
      next = await refreshByCookie(current);
    } catch {
      next = null; // offline or the server is down: keep what we hold until it expires
      if (current && current.expiresAt > Date.now()) return current;
    }
    adopt(next);
    if (next) post({ type: "session", session: next });
    return next;
  }).finally(() => {
    inflight = null;
  });
  return inflight;
}

export const sessionStore = {
  get: (): Session | null => current,
  /** Hold a new session (sign-in, sign-up, switch) and share it with the other tabs. */
  set: (session: Session | null): void => {
    adopt(session);
    post(session ? { type: "session", session } : { type: "signed-out" });
  },
  /** Forget the session in this tab only (its access token was refused). */
  clear: (): void => {
    adopt(null);
  },
  subscribe: (listener: Listener): (() => void) => {
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  },
  /** The access token to send, or null when signed out or expired. */
  accessToken: (now: number = Date.now()): string | null =>
    current && current.expiresAt > now ? current.accessToken : null,
  /** The session to use: the one in memory while valid, else one restored from the refresh cookie. */
  restore: async (now: number = Date.now()): Promise<Session | null> => {
    if (fresh(current, now)) return current;
    return renew();
  },
  /** Sign out: revoke the session on the server (which clears the cookie) and tell every tab. */
  signOut: async (): Promise<void> => {
    try {
      await cookieCall("/api/auth/logout");
    } finally {
      sessionStore.set(null);
    }
  },
};
