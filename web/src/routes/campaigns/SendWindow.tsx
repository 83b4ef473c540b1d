import { useId } from "react";
import { Field } from "../../components/Field";

export const WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

export interface WindowForm {
  weekdays: number[];
  start: string;
  end: string;
}

export function windowOf(value: Record<string, unknown> | undefined): WindowForm {
  const weekdays = Array.isArray(value?.weekdays) ? (value.weekdays as number[]) : [0, 1, 2, 3, 4];
  return {
    weekdays,
    start: typeof value?.start === "string" ? value.start : "09:00",
    end: typeof value?.end === "string" ? value.end : "17:00",
  };
}

/** The send window: weekdays and local start/end times, with the server's errors under them. */
export function SendWindowFields({
  value,
  onChange,
  errors,
  legend = "Send window",
}: {
  legend?: string;
  value: WindowForm;
  onChange: (next: WindowForm) => void;
  errors: Partial<Record<string, string>>;
}) {
  const toggle = (day: number) => {
    const weekdays = value.weekdays.includes(day)
      ? value.weekdays.filter((d) => d !== day)
      : [...value.weekdays, day].sort();
    onChange({ ...value, weekdays });
  };
  const windowError = errors.send_window ?? errors["send_window.weekdays"];
  const errorId = `${useId()}-send-window-error`;
  return (
    <fieldset aria-describedby={windowError ? errorId : undefined}>
      <legend>{legend}</legend>
      <div className="checks">
        {WEEKDAYS.map((name, day) => (
          <label key={name}>
            <input type="checkbox" checked={value.weekdays.includes(day)} onChange={() => { toggle(day); }} />
            {name}
          </label>
        ))}
      </div>
      {windowError ? (
        <p id={errorId} className="field__error" role="alert">
          {windowError}
        </p>
      ) : null}
      <div className="row">
        <Field
          label="Start (local time)"
          name="window_start"
          value={value.start}
          onChange={(e) => { onChange({ ...value, start: e.target.value }); }}
          hint="HH:MM"
          error={errors["send_window.start"]}
        />
        <Field
          label="End (local time)"
          name="window_end"
          value={value.end}
          onChange={(e) => { onChange({ ...value, end: e.target.value }); }}
          hint="HH:MM, 24:00 for midnight"
          error={errors["send_window.end"]}
        />
      </div>
    </fieldset>
  );
}
