import { useId, useLayoutEffect, useRef, useState } from "react";
import { TextArea } from "./TextArea";
import { customVariable, insertVariable, VARIABLES } from "./variables";

interface Props {
  label: string;
  name: string;
  value: string;
  onChange: (value: string) => void;
  error?: string | undefined;
  rows?: number;
}

/** A template textarea with a variable picker that inserts `{{ variable }}` at the cursor. */
export function TemplateField({ label, name, value, onChange, error, rows = 3 }: Props) {
  const area = useRef<HTMLTextAreaElement>(null);
  const selection = useRef({ start: value.length, end: value.length });
  const [variable, setVariable] = useState<string>(VARIABLES[0] ?? "lead.first_name");
  const [custom, setCustom] = useState("");
  const [pendingCursor, setPendingCursor] = useState<number | null>(null);
  const pickerId = useId();

  useLayoutEffect(() => {
    if (pendingCursor === null || !area.current) return;
    area.current.focus();
    area.current.setSelectionRange(pendingCursor, pendingCursor);
    setPendingCursor(null);
  }, [pendingCursor]);

  const remember = () => {
    if (area.current) selection.current = { start: area.current.selectionStart, end: area.current.selectionEnd };
  };
  const customError = custom.trim() && variable === "custom" && !customVariable(custom) ? "letters, digits and _ only" : null;

  function insert() {
    const chosen = variable === "custom" ? customVariable(custom) : variable;
    if (!chosen) return;
    const { start, end } = selection.current;
    const next = insertVariable(value, start, end, chosen);
    onChange(next.value);
    selection.current = { start: next.cursor, end: next.cursor };
    setPendingCursor(next.cursor);
  }

  return (
    <div className="template-field">
      <TextArea
        ref={area}
        label={label}
        name={name}
        rows={rows}
        value={value}
        error={error}
        onChange={(e) => {
          onChange(e.target.value);
          selection.current = { start: e.target.selectionStart, end: e.target.selectionEnd };
        }}
        onSelect={remember}
        onKeyUp={remember}
        onClick={remember}
        onBlur={remember}
      />
      <div className="picker" role="group" aria-label={`Insert a variable into ${label}`}>
        <div className="field">
          <label htmlFor={`${pickerId}-var`}>Variable for {label}</label>
          <select id={`${pickerId}-var`} value={variable} onChange={(e) => { setVariable(e.target.value); }}>
            {VARIABLES.map((v) => (
              <option key={v} value={v}>
                {v}
              </option>
            ))}
            <option value="custom">lead.custom.…</option>
          </select>
        </div>
        {variable === "custom" ? (
          <div className="field">
            <label htmlFor={`${pickerId}-custom`}>Custom field name</label>
            <input
              id={`${pickerId}-custom`}
              value={custom}
              onChange={(e) => { setCustom(e.target.value); }}
              aria-invalid={customError ? true : undefined}
            />
          </div>
        ) : null}
        <button type="button" className="button--quiet" onClick={insert} disabled={variable === "custom" && !customVariable(custom)}>
          Insert into {label}
        </button>
      </div>
      {customError ? <p className="field__error">{customError}</p> : null}
    </div>
  );
}
