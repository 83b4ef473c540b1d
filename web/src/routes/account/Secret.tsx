import { useState } from "react";

/** A secret shown this once, with a button that copies it. */
export function Secret({ label, value }: { label: string; value: string }) {
  const [copied, setCopied] = useState<"yes" | "no" | null>(null);
  async function copy() {
    try {
      await navigator.clipboard.writeText(value);
      setCopied("yes");
    } catch {
      setCopied("no");
    }
  }
  return (
    <div className="notice" role="status">
      <p>{label} It is shown this once: copy it now.</p>
      <p className="secret">
        <code aria-label={label}>{value}</code>
        <button
          type="button"
          onClick={() => {
            void copy();
          }}
        >
          Copy
        </button>
        {copied === "yes" ? <span>Copied.</span> : null}
        {copied === "no" ? <span>Could not copy: select the text and copy it.</span> : null}
      </p>
    </div>
  );
}
