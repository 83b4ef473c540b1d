/** Where to go after signing in: a path of this app only (never another origin, never the API). */
export function safeNext(next: string | null): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return "/";
  if (/^\/(api|ops)(\/|$)/.test(next)) return "/";
  return next;
}
