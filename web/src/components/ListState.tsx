import type { ReactNode } from "react";
import { toProblem } from "../api/problem";

interface Props<T> {
  label: string;
  isPending: boolean;
  error: unknown;
  items: readonly T[] | undefined;
  empty: ReactNode;
  onRetry?: () => void;
  children: (items: readonly T[]) => ReactNode;
}

/** A list's three other states (loading, failed, empty) before its items. */
export function ListState<T>({ label, isPending, error, items, empty, onRetry, children }: Props<T>) {
  if (isPending) {
    return (
      <p className="list-state" role="status" aria-live="polite">
        Loading {label}…
      </p>
    );
  }
  if (error) {
    const problem = toProblem(error);
    return (
      <div className="list-state list-state--error" role="alert">
        <p>
          Could not load {label}: {problem.detail}
        </p>
        {onRetry ? (
          <button type="button" onClick={onRetry}>
            Try again
          </button>
        ) : null}
      </div>
    );
  }
  if (!items || items.length === 0) {
    return <div className="list-state list-state--empty">{empty}</div>;
  }
  return <>{children(items)}</>;
}
