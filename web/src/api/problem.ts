import type { components } from "./schema";

export type Problem = components["schemas"]["ProblemDetails"];
export type FieldError = components["schemas"]["FieldError"];

/** A failed API call: the RFC 9457 problem the server answered (or one made up for a network failure). */
export class ProblemError extends Error {
  readonly problem: Problem;

  constructor(problem: Problem) {
    super(problem.detail || problem.title);
    this.name = "ProblemError";
    this.problem = problem;
  }

  get status(): number {
    return this.problem.status;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

/** Whether ``value`` has the members every problem carries. */
export function isProblem(value: unknown): value is Problem {
  return (
    isRecord(value) &&
    typeof value.status === "number" &&
    typeof value.title === "string" &&
    typeof value.detail === "string"
  );
}

/** Turn whatever a failed call produced into a problem the screens can show. */
export function toProblem(error: unknown, status = 0): Problem {
  if (error instanceof ProblemError) return error.problem;
  if (isProblem(error)) return error;
  const detail =
    status === 0
      ? "The server could not be reached. Check your connection and try again."
      : "The server answered with something unexpected. Try again.";
  return {
    type: "about:blank",
    title: status === 0 ? "Network error" : "Unexpected answer",
    status: status || 503,
    detail,
    code: status === 0 ? "NetworkError" : "UnexpectedAnswer",
  };
}

/** The name a field error points at: ``field`` (``email``, ``send_window.start``) or a JSON pointer. */
export function fieldName(error: FieldError): string {
  const pointer = (error as { pointer?: unknown }).pointer;
  if (typeof pointer === "string" && pointer.startsWith("/")) {
    return pointer.slice(1).split("/").join(".");
  }
  return error.field;
}

export interface FormErrors {
  /** Messages by the field they name (only fields the form has). */
  fields: Partial<Record<string, string>>;
  /** What the form shows above its fields: the problem's detail and errors naming no field of the form. */
  form: string | null;
  others: string[];
}

/** Split a problem into messages next to the form's fields and a form-level message. */
export function formErrors(error: unknown, known: readonly string[]): FormErrors {
  if (error === null || error === undefined) return { fields: {}, form: null, others: [] };
  const problem = toProblem(error);
  const fields: Partial<Record<string, string>> = {};
  const others: string[] = [];
  for (const item of problem.errors ?? []) {
    const name = fieldName(item);
    if (known.includes(name)) {
      fields[name] = fields[name] ? `${fields[name]}; ${item.message}` : item.message;
    } else {
      others.push(name && name !== "body" ? `${name}: ${item.message}` : item.message);
    }
  }
  return { fields, form: problem.detail || problem.title, others };
}
