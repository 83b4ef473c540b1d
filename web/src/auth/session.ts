/**
 * The signed-in session, held in memory only: never in localStorage or sessionStorage, so a
 * script injected into the page cannot lift a token that outlives the tab. A reload therefore
 * asks to sign in again. `restore()` is where a silent refresh (an HttpOnly refresh cookie
 * sent to POST /api/auth/refresh) slots in: callers already await it before deciding.
 */
import type { components } from "../api/schema";

export type SessionRead = components["schemas"]["SessionRead"];

export interface Session {
  accessToken: string;
  /** When the access token stops working (ms since the epoch). */
  expiresAt: number;
  /** Held in memory to sign out (revoke) the session; later replaced by the HttpOnly cookie. */
  refreshToken: string | null;
  user: SessionRead["user"];
  organization: SessionRead["organization"];
  role: SessionRead["role"];
}

type Listener = () => void;

let current: Session | null = null;
const listeners = new Set<Listener>();

function emit(): void {
  for (const listener of listeners) listener();
}

export function sessionFrom(answer: SessionRead, now: number = Date.now()): Session {
  return {
    accessToken: answer.access_token,
    expiresAt: now + answer.expires_in * 1000,
    refreshToken: answer.refresh_token,
    user: answer.user,
    organization: answer.organization,
    role: answer.role,
  };
}

export const sessionStore = {
  get: (): Session | null => current,
  set: (session: Session | null): void => {
    current = session;
    emit();
  },
  clear: (): void => {
    sessionStore.set(null);
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
  /**
   * The session to use, restoring one if possible. Today: the one in memory (if still valid).
   * With the refresh cookie this will POST /api/auth/refresh once and keep the answer.
   */
  restore: (now: number = Date.now()): Promise<Session | null> => {
    if (current && current.expiresAt <= now) sessionStore.clear();
    return Promise.resolve(current);
  },
};
