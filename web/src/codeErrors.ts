// Which line of a code node's source an error is about (docs/nodes.md, `code`): a 422 from
// saving names it in its message ("node 'score': Value error, line 3, column 19: invalid
// syntax"), a CodeError from a run in its stack (`File "<code>", line 2, in helper`, the
// innermost frame last) or at the end of its message ("... (line 2)").
import type { ErrorInfo } from "./types";

export interface LineError {
  /** 1-based, as Python counts. */
  line: number;
  message: string;
}

/** The line a save problem of ``parameters.source`` names, or null. */
export function lineOfSaveProblem(message: string): number | null {
  const match = /(?:^|[\s,:(])line (\d+)\b/.exec(message);
  return match ? Number(match[1]) : null;
}

/** The line a run's CodeError failed on (the innermost frame of the user's code), or null. */
export function lineOfRunError(error: ErrorInfo): number | null {
  if (error.type !== "CodeError") return null;
  const frames = [...(error.stack ?? "").matchAll(/File "<code>", line (\d+)/g)];
  if (frames.length) return Number(frames[frames.length - 1][1]);
  const tail = /\(line (\d+)\)\s*$/.exec(error.message);
  return tail ? Number(tail[1]) : null;
}

/** The lines to mark: each save problem that names one, and the run's error. */
export function errorLines(saveProblems: string[], runError: ErrorInfo | null): LineError[] {
  const lines: LineError[] = [];
  for (const message of saveProblems) {
    const line = lineOfSaveProblem(message);
    if (line !== null) lines.push({ line, message });
  }
  const runLine = runError ? lineOfRunError(runError) : null;
  if (runError && runLine !== null) lines.push({ line: runLine, message: runError.message });
  return lines;
}
