import { describe, expect, it } from "vitest";
import { formErrors, ProblemError, toProblem, type Problem } from "./problem";

const invalid: Problem = {
  type: "https://tidewater.dev/problems/invalid",
  title: "Invalid request",
  status: 422,
  detail: "One or more fields are invalid.",
  code: "Invalid",
  errors: [
    { field: "password", message: "String should have at least 12 characters", source: "body" },
    { field: "email", message: "not a valid email address" },
    { field: "email", message: "already taken" },
    { field: "org_id", message: "extra fields not permitted" },
  ],
};

describe("formErrors", () => {
  it("puts each error next to the field it names and keeps the rest at form level", () => {
    const errors = formErrors(new ProblemError(invalid), ["email", "password"]);
    expect(errors.fields).toEqual({
      password: "String should have at least 12 characters",
      email: "not a valid email address; already taken",
    });
    expect(errors.form).toBe("One or more fields are invalid.");
    expect(errors.others).toEqual(["org_id: extra fields not permitted"]);
  });

  it("reads a JSON pointer when an error carries one", () => {
    const problem = { ...invalid, errors: [{ field: "", pointer: "/send_window/start", message: "bad time" }] };
    expect(formErrors(problem, ["send_window.start"]).fields).toEqual({ "send_window.start": "bad time" });
  });

  it("is empty without an error", () => {
    expect(formErrors(null, ["email"])).toEqual({ fields: {}, form: null, others: [] });
  });

  it("turns a network failure into a problem with a message", () => {
    const problem = toProblem(new TypeError("Failed to fetch"));
    expect(problem.code).toBe("NetworkError");
    expect(problem.detail).toMatch(/could not be reached/);
  });
});
