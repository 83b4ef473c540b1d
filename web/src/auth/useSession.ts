import { useSyncExternalStore } from "react";
import { sessionStore, type Session } from "./session";

/** The current session; re-renders when it changes (sign-in, sign-out, expiry noticed by a call). */
export function useSession(): Session | null {
  return useSyncExternalStore(sessionStore.subscribe, sessionStore.get, sessionStore.get);
}
