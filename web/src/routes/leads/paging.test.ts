import { describe, expect, it } from "vitest";
import { FIRST_PAGE, current, filtersFrom, filtersTo, hasPrevious, listQuery, next, pageNumber, previous } from "./paging";
import { finished, fraction, pollInterval } from "./progress";

describe("cursor paging", () => {
  it("walks forward by next_cursor and back through the cursors seen", () => {
    expect(current(FIRST_PAGE)).toBeNull();
    expect(hasPrevious(FIRST_PAGE)).toBe(false);
    const two = next(FIRST_PAGE, "c2");
    const three = next(two, "c3");
    expect(current(three)).toBe("c3");
    expect(pageNumber(three)).toBe(3);
    expect(next(three, null)).toBe(three);
    expect(next(three, undefined)).toBe(three);
    expect(current(previous(three))).toBe("c2");
    expect(current(previous(previous(three)))).toBeNull();
    expect(previous(FIRST_PAGE)).toBe(FIRST_PAGE);
  });

  it("asks for one page: trimmed filters, blanks left out, the page's cursor and size", () => {
    const filters = { q: " ada ", status: "", email: "", company: "Hopper", import_id: "" };
    expect(listQuery(filters, FIRST_PAGE, 100)).toEqual({ limit: 100, q: "ada", company: "Hopper" });
    expect(listQuery(filters, next(FIRST_PAGE, "abc"), 50)).toEqual({ limit: 50, q: "ada", company: "Hopper", cursor: "abc" });
  });

  it("keeps filters in the address bar and reads them back", () => {
    const params = filtersTo({ q: "ada", status: "active", email: " ", company: "", import_id: "i1" });
    expect(params.toString()).toBe("q=ada&status=active&import_id=i1");
    expect(filtersFrom(params)).toEqual({ q: "ada", status: "active", email: "", company: "", import_id: "i1" });
  });
});

describe("import progress", () => {
  it("polls until the import ends and never shows full before it is done", () => {
    expect(pollInterval(undefined)).toBe(1000);
    expect(pollInterval({ status: "running" })).toBe(1000);
    expect(pollInterval({ status: "completed" })).toBe(false);
    expect(finished({ status: "failed" })).toBe(true);
    expect(fraction({ status: "queued", rows_read: 0 }, 10)).toBe(0);
    expect(fraction({ status: "running", rows_read: 5 }, 10)).toBe(0.5);
    expect(fraction({ status: "running", rows_read: 12 }, 10)).toBe(0.99);
    expect(fraction({ status: "running", rows_read: 5 }, null)).toBeNull();
    expect(fraction({ status: "completed", rows_read: 5 }, null)).toBe(1);
  });
});
