import type { ImportRead } from "./api";

/** Whether an import has stopped moving (no more polling). */
export function finished(item: Pick<ImportRead, "status">): boolean {
  return item.status === "completed" || item.status === "failed";
}

/**
 * The progress bar's value from 0 to 1, or null when it cannot be known (no row count: the bar is
 * indeterminate). A running import never shows full before it is done.
 */
export function fraction(item: Pick<ImportRead, "status" | "rows_read">, expectedRows: number | null): number | null {
  if (finished(item)) return 1;
  if (item.status === "queued") return 0;
  if (!expectedRows || expectedRows <= 0) return null;
  return Math.min(item.rows_read / expectedRows, 0.99);
}

/** How often to ask for the import again: every second while it moves, never once it ended. */
export function pollInterval(item: Pick<ImportRead, "status"> | undefined): number | false {
  return item && finished(item) ? false : 1000;
}
