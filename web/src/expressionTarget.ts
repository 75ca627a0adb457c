// The parameter field a click on an items table inserts into: the expression field focused
// last in the node panel. One at a time; a field forgets itself when it goes away.

export interface ExpressionTarget {
  /** The field's label, to say where a click will insert. */
  label: string;
  insert: (expression: string) => void;
}

let current: ExpressionTarget | null = null;
const listeners = new Set<() => void>();

export function setExpressionTarget(target: ExpressionTarget): void {
  current = target;
  listeners.forEach((l) => l());
}

export function forgetExpressionTarget(target: ExpressionTarget): void {
  if (current !== target) return;
  current = null;
  listeners.forEach((l) => l());
}

export function expressionTarget(): ExpressionTarget | null {
  return current;
}

/** Calls ``listener`` whenever the target changes; returns the unsubscribe. */
export function watchExpressionTarget(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
