/**
 * Cursor paging of a list: the API gives each page a ``next_cursor``; going back needs the cursors
 * of the pages already seen. Only the current page is ever fetched or rendered.
 */

export interface Paging {
  /** Cursors of the pages seen so far; the first page has none (null). */
  cursors: (string | null)[];
}

export const FIRST_PAGE: Paging = { cursors: [null] };

/** The cursor to fetch the current page with. */
export function current(paging: Paging): string | null {
  return paging.cursors[paging.cursors.length - 1] ?? null;
}

/** The page number shown to people, from 1. */
export function pageNumber(paging: Paging): number {
  return paging.cursors.length;
}

/** Go to the next page (nothing changes when there is none). */
export function next(paging: Paging, nextCursor: string | null | undefined): Paging {
  return nextCursor ? { cursors: [...paging.cursors, nextCursor] } : paging;
}

/** Go back one page (the first page stays). */
export function previous(paging: Paging): Paging {
  return paging.cursors.length > 1 ? { cursors: paging.cursors.slice(0, -1) } : paging;
}

export function hasPrevious(paging: Paging): boolean {
  return paging.cursors.length > 1;
}

export interface LeadFilters {
  q: string;
  status: string;
  email: string;
  company: string;
  import_id: string;
}

export const NO_FILTERS: LeadFilters = { q: "", status: "", email: "", company: "", import_id: "" };

/** Filters from the address bar's query (unknown parameters ignored). */
export function filtersFrom(params: URLSearchParams): LeadFilters {
  return {
    q: params.get("q") ?? "",
    status: params.get("status") ?? "",
    email: params.get("email") ?? "",
    company: params.get("company") ?? "",
    import_id: params.get("import_id") ?? "",
  };
}

/** The address bar's query for filters: empty ones left out. */
export function filtersTo(filters: LeadFilters): URLSearchParams {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(filters) as [keyof LeadFilters, string][]) {
    if (value.trim()) params.set(name, value.trim());
  }
  return params;
}

/** The API query of one page: trimmed filters, blanks left out, the page's cursor and size. */
export function listQuery(filters: object, paging: Paging, limit: number): Record<string, string | number> {
  const query: Record<string, string | number> = { limit };
  for (const [name, value] of Object.entries(filters) as [string, unknown][]) {
    if (typeof value === "string" && value.trim()) query[name] = value.trim();
  }
  const cursor = current(paging);
  if (cursor) query.cursor = cursor;
  return query;
}
