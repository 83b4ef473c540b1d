import type { FormErrors } from "../api/problem";

/** The form-level message of a failed submit, plus any field errors the form has no field for. */
export function FormError({ errors }: { errors: FormErrors }) {
  if (!errors.form && errors.others.length === 0) return null;
  return (
    <div className="form-error" role="alert">
      {errors.form ? <p className="form-error__detail">{errors.form}</p> : null}
      {errors.others.length ? (
        <ul>
          {errors.others.map((message) => (
            <li key={message}>{message}</li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}
