import { Blob as NodeBlob } from "node:buffer";
import { describe, expect, it } from "vitest";
import {
  assign,
  countRows,
  detectField,
  detectMapping,
  mappingForServer,
  mappingProblems,
  parsePreview,
  previewFile,
  reportedTarget,
  sniffDelimiter,
} from "./csv";

describe("parsePreview", () => {
  it("reads the header and the first rows, with quotes, escaped quotes and embedded line ends", () => {
    const text = '\ufeffE-mail,First Name,Notes\r\nada@x.example,Ada,"says ""hi"", twice"\r\ngrace@x.example,Grace,"two\nlines"\r\n';
    const preview = parsePreview(text);
    expect(preview.delimiter).toBe(",");
    expect(preview.header).toEqual(["E-mail", "First Name", "Notes"]);
    expect(preview.rows).toEqual([
      ["ada@x.example", "Ada", 'says "hi", twice'],
      ["grace@x.example", "Grace", "two\nlines"],
    ]);
  });

  it("sniffs semicolons and tabs outside quotes, skips blank lines and keeps at most maxRows", () => {
    expect(sniffDelimiter('"a,b";c;d')).toBe(";");
    expect(sniffDelimiter("a\tb\tc")).toBe("\t");
    expect(sniffDelimiter("single")).toBe(",");
    const preview = parsePreview("\n\nemail;phone\n\na@x.example;1\nb@x.example;2\nc@x.example;3\n", { maxRows: 2 });
    expect(preview.delimiter).toBe(";");
    expect(preview.header).toEqual(["email", "phone"]);
    expect(preview.rows).toEqual([
      ["a@x.example", "1"],
      ["b@x.example", "2"],
    ]);
  });

  it("honours a chosen delimiter and leaves out a last row cut off by the preview's byte limit", () => {
    const cut = parsePreview("email,name\na@x.example,Ada\nb@x.exa", { delimiter: ",", complete: false });
    expect(cut.rows).toEqual([["a@x.example", "Ada"]]);
    const whole = parsePreview("email,name\na@x.example,Ada\nb@x.example,Bob", { complete: true });
    expect(whole.rows).toHaveLength(2);
    expect(parsePreview("a;b\n1;2", { delimiter: "," }).header).toEqual(["a;b"]);
  });

  it("finds nothing in an empty file", () => {
    expect(parsePreview("")).toEqual({ delimiter: ",", header: [], rows: [] });
  });

  it("previews a file and counts its data rows", async () => {
    // jsdom's Blob has no text() or stream(); Node's has both, as browsers do.
    const blob = (text: string) => new NodeBlob([text]) as unknown as Blob;
    const file = blob("email,name\na@x.example,A\nb@x.example,B");
    expect((await previewFile(file)).rows).toHaveLength(2);
    expect(await countRows(file)).toBe(2);
    expect(await countRows(blob("email\na@x.example\n"))).toBe(1);
    expect(await countRows(blob(""))).toBe(0);
  });
});

describe("mapping", () => {
  it("detects fields as the server's synonyms do, first column wins, the rest custom", () => {
    expect(detectField("E-mail Address")).toBe("email");
    expect(detectField("Mobile Phone")).toBe("phone");
    expect(detectField("Favourite colour")).toBeNull();
    expect(detectMapping(["Email", "Work Email", "Given name", "Colour"])).toEqual({
      Email: "email",
      "Work Email": "custom",
      "Given name": "first_name",
      Colour: "custom",
    });
    expect(detectMapping(["Email", "Colour"], "ignore").Colour).toBe("ignore");
  });

  it("moves a lead field to the column chosen last and flags what the server would refuse", () => {
    const start = detectMapping(["Email", "Backup", "Company"]);
    const moved = assign(start, "Backup", "email");
    expect(moved).toEqual({ Email: "custom", Backup: "email", Company: "company" });
    expect(mappingProblems(moved)).toEqual({ columns: {}, form: null });
    const none = assign(moved, "Backup", "ignore");
    expect(mappingProblems(none).form).toMatch(/Email or Phone/);
    expect(mappingProblems({ A: "company", B: "company", C: "email" }).columns).toEqual({
      B: "Company is already fed by “A”.",
    });
  });

  it("sends every column by name, custom fields as custom:<column>", () => {
    expect(JSON.parse(mappingForServer({ Email: "email", Colour: "custom", Junk: "ignore" }))).toEqual({
      Email: "email",
      Colour: "custom:Colour",
      Junk: "ignore",
    });
  });

  it("names the targets the server reports", () => {
    expect(reportedTarget("email")).toBe("Email");
    expect(reportedTarget("custom:Colour")).toBe("Custom field “Colour”");
    expect(reportedTarget(null)).toBe("Ignore");
  });
});
