import { describe, expect, it } from "vitest";
import { customVariable, insertVariable, VARIABLES } from "./variables";

describe("insertVariable", () => {
  it("inserts at the cursor and puts the cursor after it", () => {
    expect(insertVariable("Hi ,", 3, 3, "lead.first_name")).toEqual({
      value: "Hi {{ lead.first_name }},",
      cursor: 24,
    });
  });

  it("replaces the selection, whichever way it was made", () => {
    expect(insertVariable("Hi NAME!", 7, 3, "lead.full_name").value).toBe("Hi {{ lead.full_name }}!");
  });

  it("clamps a cursor outside the text to its end", () => {
    expect(insertVariable("ab", 10, 12, "brand.name")).toEqual({ value: "ab{{ brand.name }}", cursor: 18 });
  });
});

describe("variables", () => {
  it("offers the lead and brand fields", () => {
    expect(VARIABLES).toContain("lead.first_name");
    expect(VARIABLES).toContain("brand.postal_address");
    expect(VARIABLES).toHaveLength(17);
  });

  it("makes custom fields only from names a template can spell", () => {
    expect(customVariable(" plan ")).toBe("lead.custom.plan");
    expect(customVariable("two words")).toBeNull();
    expect(customVariable("1st")).toBeNull();
  });
});
