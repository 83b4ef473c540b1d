import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useCallback, useEffect, useRef, useState, type SyntheticEvent } from "react";
import { formErrors } from "../../api/problem";
import { Field, SelectField } from "../../components/Field";
import { FormError } from "../../components/FormError";
import {
  campaignKeys,
  createStep,
  deleteStep,
  updateStep,
  type Channel,
  type DelayUnit,
  type StepCreate,
  type StepRead,
  type VariantIn,
} from "./api";
import { SendWindowFields, windowOf, type WindowForm } from "./SendWindow";
import { StepPreview } from "./StepPreview";
import { TemplateField } from "./TemplateField";

type Copy = "subject_template" | "body_template" | "sms_template" | "script_template";
const COPY_OF: Record<Channel, { name: Copy; label: string; rows: number }[]> = {
  email: [
    { name: "subject_template", label: "Subject", rows: 1 },
    { name: "body_template", label: "Body", rows: 6 },
  ],
  sms: [{ name: "sms_template", label: "Text message", rows: 3 }],
  voicemail: [{ name: "script_template", label: "Voicemail script", rows: 4 }],
};
const CHANNELS: Record<Channel, string> = { email: "Email", sms: "SMS", voicemail: "Voicemail" };
const UNITS: Record<DelayUnit, string> = { minutes: "minutes", hours: "hours", days: "days" };

interface VariantForm {
  key: string;
  weight: string;
  copy: Partial<Record<Copy, string>>;
}

interface StepForm {
  channel: Channel;
  delay: string;
  delay_unit: DelayUnit;
  business_days: boolean;
  copy: Partial<Record<Copy, string>>;
  variants: VariantForm[];
  /** Whether the step keeps to its own send window rather than the campaign's. */
  ownWindow: boolean;
  window: WindowForm;
}

function formOf(step: StepRead | undefined, first: boolean): StepForm {
  if (!step) {
    return {
      channel: "email",
      delay: first ? "0" : "2",
      delay_unit: first ? "minutes" : "days",
      business_days: false,
      copy: {},
      variants: [],
      ownWindow: false,
      window: windowOf(undefined),
    };
  }
  const copy: Partial<Record<Copy, string>> = {};
  for (const name of ["subject_template", "body_template", "sms_template", "script_template"] as const) {
    copy[name] = step[name] ?? "";
  }
  const variants = step.variants.map((v) => ({
    key: typeof v.key === "string" ? v.key : "",
    weight: typeof v.weight === "number" ? String(v.weight) : "1",
    copy: Object.fromEntries(
      (["subject_template", "body_template", "sms_template", "script_template"] as const)
        .filter((n) => typeof v[n] === "string")
        .map((n) => [n, String(v[n])]),
    ),
  }));
  return {
    channel: step.channel,
    delay: String(step.delay),
    delay_unit: step.delay_unit,
    business_days: step.business_days,
    copy,
    variants,
    ownWindow: Boolean(step.send_window),
    window: windowOf(step.send_window ?? undefined),
  };
}

function bodyOf(form: StepForm): StepCreate {
  const copy = Object.fromEntries(COPY_OF[form.channel].map(({ name }) => [name, form.copy[name]?.trim() ? form.copy[name] : null]));
  const variants: VariantIn[] = form.variants.map((v) => {
    const variant: VariantIn = { key: v.key.trim(), weight: Number.parseInt(v.weight, 10) || 1 };
    for (const { name } of COPY_OF[form.channel]) {
      const text = v.copy[name];
      if (text?.trim()) variant[name] = text;
    }
    return variant;
  });
  const delay = Number.parseInt(form.delay, 10);
  return {
    channel: form.channel,
    delay: Number.isNaN(delay) ? -1 : delay,
    delay_unit: form.delay_unit,
    business_days: form.business_days,
    ...copy,
    variants,
    send_window: form.ownWindow ? form.window : null,
  };
}

/** How long the copy of a saved step rests before the server checks (and keeps) it. */
export const CHECK_AFTER_MS = 800;

/** The names a step's problem may point at (`variants[0].key` and `variants.0.key` alike). */
function knownFields(form: StepForm): string[] {
  const names = [
    "channel", "delay", "delay_unit", "business_days", "variants", "subject_template", "body_template", "sms_template", "script_template",
    "send_window", "send_window.weekdays", "send_window.start", "send_window.end",
  ];
  form.variants.forEach((_, i) => {
    for (const f of ["key", "weight", "subject_template", "body_template", "sms_template", "script_template"]) {
      names.push(`variants[${String(i)}].${f}`, `variants.${String(i)}.${f}`);
    }
  });
  return names;
}

interface Props {
  campaignId: string;
  step?: StepRead;
  /** Whether the campaign is a draft (once launched: copy and variants only). */
  draft: boolean;
  readOnly: boolean;
  first: boolean;
}

/** One step's form (or the form that adds a step): channel, delay, copy with variables, A/B variants. */
export function StepEditor({ campaignId, step, draft, readOnly, first }: Props) {
  const queryClient = useQueryClient();
  const [form, setForm] = useState<StepForm>(() => formOf(step, first));
  const [saved, setSaved] = useState<string | null>(null);
  const save = useMutation({
    mutationFn: (body: StepCreate) => {
      if (!step) return createStep(campaignId, body);
      const update = draft ? body : { ...body, channel: undefined, delay: undefined, delay_unit: undefined, business_days: undefined };
      return updateStep(campaignId, step.id, update);
    },
    onSuccess: async () => {
      setSaved(step ? `Step ${String(step.position)} saved.` : "Step added.");
      if (!step) setForm(formOf(undefined, false));
      await queryClient.invalidateQueries({ queryKey: campaignKeys.steps(campaignId) });
    },
    onError: () => { setSaved(null); },
  });
  const remove = useMutation({
    mutationFn: () => deleteStep(campaignId, step?.id ?? ""),
    onSuccess: async () => {
      await queryClient.invalidateQueries({ queryKey: campaignKeys.steps(campaignId) });
    },
  });
  // A saved step's copy is checked live: once typing rests, the server validates (and keeps) the
  // templates and variants, and its errors show under their fields. The preview below renders the
  // unsaved copy for a chosen lead without saving it.
  const check = useMutation({
    mutationFn: (body: StepCreate) =>
      updateStep(campaignId, step?.id ?? "", {
        subject_template: body.subject_template ?? null,
        body_template: body.body_template ?? null,
        sms_template: body.sms_template ?? null,
        script_template: body.script_template ?? null,
        variants: body.variants ?? null,
      }),
    onMutate: () => { save.reset(); },
    onSuccess: () => { setSaved(`Step ${String(step?.position ?? "")} copy checked and saved.`); },
  });
  const edited = useRef(false);
  const live = Boolean(step) && !readOnly;
  const checkMutate = check.mutate;
  useEffect(() => {
    if (!live || !edited.current) return;
    const timer = setTimeout(() => { checkMutate(bodyOf(form)); }, CHECK_AFTER_MS);
    return () => { clearTimeout(timer); };
  }, [live, form.copy, form.variants, checkMutate]); // eslint-disable-line react-hooks/exhaustive-deps
  const errors = formErrors(save.error ?? check.error ?? remove.error, knownFields(form));
  // The preview's 422 names fields too; the save's or check's own errors win when both speak.
  const [previewErrors, setPreviewErrors] = useState<Record<string, string>>({});
  const onPreviewErrors = useCallback((next: Record<string, string>) => { setPreviewErrors(next); }, []);
  const err = (name: string) => errors.fields[name] ?? previewErrors[name];
  const draftBody = bodyOf(form);
  const previewFields = {
    channel: draftBody.channel,
    subject_template: draftBody.subject_template ?? null,
    body_template: draftBody.body_template ?? null,
    sms_template: draftBody.sms_template ?? null,
    script_template: draftBody.script_template ?? null,
    variants: draftBody.variants ?? [],
  };
  const title = step ? `Step ${String(step.position)}` : "Add a step";
  const set = (patch: Partial<StepForm>) => { setForm((f) => ({ ...f, ...patch })); setSaved(null); };
  const setCopy = (name: Copy, text: string) => { edited.current = true; set({ copy: { ...form.copy, [name]: text } }); };
  const setVariant = (i: number, patch: Partial<VariantForm>) => {
    edited.current = true;
    set({ variants: form.variants.map((v, j) => (j === i ? { ...v, ...patch } : v)) });
  };
  const locked = readOnly || (!draft && Boolean(step));

  function submit(event: SyntheticEvent<HTMLFormElement>) {
    event.preventDefault();
    check.reset();
    save.mutate(bodyOf(form));
  }

  return (
    <form onSubmit={submit} noValidate aria-label={title} className="step" data-step-position={step?.position}>
      <h3>{title}</h3>
      <FormError errors={errors} />
      <fieldset className="plain" disabled={readOnly}>
        <div className="row">
          <SelectField
            label="Channel"
            name="channel"
            value={form.channel}
            disabled={locked}
            onChange={(e) => { set({ channel: e.target.value as Channel }); }}
            error={err("channel")}
          >
            {Object.entries(CHANNELS).map(([value, text]) => (
              <option key={value} value={value}>
                {text}
              </option>
            ))}
          </SelectField>
          <Field
            label="Wait"
            name="delay"
            type="number"
            min={0}
            inputMode="numeric"
            value={form.delay}
            disabled={locked}
            onChange={(e) => { set({ delay: e.target.value }); }}
            hint={first || step?.position === 1 ? "after enrollment" : "after the previous step"}
            error={err("delay")}
          />
          <SelectField
            label="Unit"
            name="delay_unit"
            value={form.delay_unit}
            disabled={locked}
            onChange={(e) => { set({ delay_unit: e.target.value as DelayUnit }); }}
            error={err("delay_unit")}
          >
            {Object.entries(UNITS).map(([value, text]) => (
              <option key={value} value={value}>
                {text}
              </option>
            ))}
          </SelectField>
        </div>
        <div className="checks">
          <label>
            <input
              type="checkbox"
              checked={form.business_days}
              disabled={locked || form.delay_unit !== "days"}
              onChange={(e) => { set({ business_days: e.target.checked }); }}
            />
            Count business days only
          </label>
        </div>
        <fieldset>
          <legend>When {step ? `step ${String(step.position)}` : "this step"} may go out</legend>
          <div className="checks" role="radiogroup" aria-label={`Send window of ${title.toLowerCase()}`}>
            <label>
              <input
                type="radio"
                name={`window-${step?.id ?? "new"}`}
                checked={!form.ownWindow}
                onChange={() => { set({ ownWindow: false }); }}
              />
              The campaign's send window
            </label>
            <label>
              <input
                type="radio"
                name={`window-${step?.id ?? "new"}`}
                checked={form.ownWindow}
                onChange={() => { set({ ownWindow: true }); }}
              />
              Its own send window
            </label>
          </div>
          {form.ownWindow ? (
            <SendWindowFields
              legend={`${title} send window`}
              value={form.window}
              onChange={(next) => { set({ window: next }); }}
              errors={errors.fields}
            />
          ) : null}
          <p className="field__hint">Steps go out within their send window, in the lead's time zone.</p>
        </fieldset>
        {COPY_OF[form.channel].map(({ name, label, rows }) => (
          <TemplateField
            key={name}
            label={label}
            name={name}
            rows={rows}
            value={form.copy[name] ?? ""}
            onChange={(text) => { setCopy(name, text); }}
            error={err(name)}
          />
        ))}
        <fieldset>
          <legend>A/B variants</legend>
          <p className="field__hint">
            Each variant overrides the copy above for a share of the leads, chosen by weight. Leave a field empty to keep the step's copy.
          </p>
          {form.variants.map((variant, i) => {
            const at = (f: string) => err(`variants[${String(i)}].${f}`) ?? err(`variants.${String(i)}.${f}`);
            return (
              <div key={i} className="variant" role="group" aria-label={`Variant ${String(i + 1)}`}>
                <div className="row">
                  <Field
                    label={`Variant ${String(i + 1)} key`}
                    value={variant.key}
                    onChange={(e) => { setVariant(i, { key: e.target.value }); }}
                    error={at("key")}
                  />
                  <Field
                    label={`Variant ${String(i + 1)} weight`}
                    type="number"
                    min={1}
                    value={variant.weight}
                    onChange={(e) => { setVariant(i, { weight: e.target.value }); }}
                    error={at("weight")}
                  />
                </div>
                {COPY_OF[form.channel].map(({ name, label, rows }) => (
                  <TemplateField
                    key={name}
                    label={`Variant ${String(i + 1)} ${label.toLowerCase()}`}
                    name={`variant-${String(i)}-${name}`}
                    rows={rows}
                    value={variant.copy[name] ?? ""}
                    onChange={(text) => { setVariant(i, { copy: { ...variant.copy, [name]: text } }); }}
                    error={at(name)}
                  />
                ))}
                {readOnly ? null : (
                  <button
                    type="button"
                    className="button--quiet"
                    onClick={() => { edited.current = true; set({ variants: form.variants.filter((_, j) => j !== i) }); }}
                  >
                    Remove variant {i + 1}
                  </button>
                )}
              </div>
            );
          })}
          {err("variants") ? <p className="field__error" role="alert">{err("variants")}</p> : null}
          {readOnly || form.variants.length >= 10 ? null : (
            <button
              type="button"
              className="button--quiet"
              onClick={() => {
                const key = String.fromCharCode(65 + form.variants.length);
                edited.current = true;
                set({ variants: [...form.variants, { key, weight: "1", copy: {} }] });
              }}
            >
              Add a variant
            </button>
          )}
        </fieldset>
      </fieldset>
      {step ? (
        <StepPreview
          campaignId={campaignId}
          stepId={step.id}
          fields={previewFields}
          variantKeys={form.variants.map((v) => v.key.trim()).filter(Boolean)}
          onFieldErrors={onPreviewErrors}
        />
      ) : (
        <p className="field__hint">Add the step to preview it for a lead.</p>
      )}
      {readOnly ? null : (
        <div className="actions">
          <button type="submit" disabled={save.isPending}>
            {save.isPending ? "Saving…" : step ? `Save step ${String(step.position)}` : "Add step"}
          </button>
          {step && draft ? (
            <button type="button" className="button--danger" onClick={() => { remove.mutate(); }} disabled={remove.isPending}>
              Delete step {step.position}
            </button>
          ) : null}
        </div>
      )}
      <p role="status" aria-live="polite">
        {saved}
      </p>
    </form>
  );
}
