// The report of binary-trees (bench/binarytrees.ts): the markdown table of the variants' times,
// memory and system calls, fastest first, the bar chart (SVG), and the paragraph on libc's memory
// access cost.
//
// System calls: each allocator's `stats().systemCalls` after the timed run (mmap, munmap, mremap,
// madvise, mprotect, as ffi/counting_os.ts counts them; `close()` not included), so that the
// table shows why mapping every node costs: MmapAllocator makes an `mmap` and a `munmap` per node
// (millions at depth 16), a buddy arena one `mmap` per MiB. libc's calls happen inside libc and JS
// objects' inside V8: not counted, "n/a".

import { nodeCount } from "./_binarytrees_program.ts";
import { formatSystemCalls, totalSystemCalls } from "../src/trace/report.ts";
import type { AccessCost, RunResult, Variant } from "./_binarytrees_variants.ts";

// --- report ------------------------------------------------------------------------------------

/** Bytes for people: 1536 -> "1.5 KiB". */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/** A finished or failed variant, as reported. */
export interface Row {
  variant: string;
  kind: Variant["kind"];
  result?: RunResult;
  /** Set when the variant threw. */
  error?: string;
  /** True when its lines equal the JS reference's. */
  matches?: boolean;
}

/**
 * A run's system calls: `"2 mmap"`, `"1,000 mmap, 1,000 munmap"` (a stopped run's: `"stopped early:
 * ..."`); `"n/a"` when not counted (libc, JS).
 */
export function systemCallsText(r: RunResult): string {
  const calls = r.stats?.systemCalls;
  if (calls === undefined || !Number.isFinite(totalSystemCalls(calls))) return "n/a";
  return `${r.complete ? "" : "stopped early: "}${formatSystemCalls(calls)}`;
}

export function formatMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms.toFixed(1);
}

/** The time of a run for people (`unit` after each number); a stopped run's is a lower bound. */
export function timeText(r: RunResult, unit = ""): string {
  if (r.complete) return formatMs(r.ms) + unit;
  const done = Math.max(1, Math.round((100 * r.nodes) / r.totalNodes));
  return `≥ ${formatMs(r.ms)}${unit} (stopped after ${done}% of the nodes; ≈ ${
    formatMs(projectedMs(r))
  }${unit} at that rate)`;
}

/** A run's time, or for a stopped run its time scaled to all the nodes (an estimate). */
function projectedMs(r: RunResult): number {
  return r.complete ? r.ms : (r.ms * r.totalNodes) / r.nodes;
}

/** True when a run printed the reference's lines (a stopped run: the lines it got to). */
export function sameChecks(result: RunResult, reference: string[]): boolean {
  const expected = result.complete ? reference : reference.slice(0, result.lines.length);
  return result.lines.join("\n") === expected.join("\n");
}

/** The results as a markdown table, fastest first; failed variants last. */
export function markdownTable(rows: Row[]): string {
  const libcMs = rows.find((row) => row.kind === "libc")?.result?.ms;
  const out = [
    "| variant | time (ms) | × libc time | peak memory | memory measured as | checks | system calls |",
    "| --- | ---: | ---: | ---: | --- | --- | --- |",
  ];
  for (const row of sortRows(rows)) {
    const r = row.result;
    if (r === undefined) {
      out.push(`| ${row.variant} | failed | | | | ${row.error ?? ""} | |`);
      continue;
    }
    const ratio = libcMs === undefined
      ? "n/a"
      : `${r.complete ? "" : "≥ "}${(r.ms / libcMs).toFixed(2)}`;
    const memory = r.memoryBytes === undefined ? "n/a" : formatBytes(r.memoryBytes);
    const checks = row.matches === undefined
      ? ""
      : !row.matches
      ? "MISMATCH"
      : r.complete
      ? "same as JS"
      : `same as JS (the ${r.lines.length} lines printed before the stop)`;
    out.push(
      `| ${row.variant} | ${timeText(r)} | ${ratio} | ${memory} | ${r.memorySource} | ${checks} | ${
        systemCallsText(r)
      } |`,
    );
  }
  return out.join("\n");
}

function sortRows(rows: Row[]): Row[] {
  const key = (row: Row) => row.result === undefined ? Infinity : projectedMs(row.result);
  return [...rows].sort((a, b) => key(a) - key(b));
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/** Round tick values covering 0..max (linear) or powers of ten (log). */
function ticks(min: number, max: number, log: boolean): number[] {
  if (log) {
    const out: number[] = [];
    for (let p = Math.floor(Math.log10(min)); p <= Math.ceil(Math.log10(max)); p++) {
      out.push(10 ** p);
    }
    return out;
  }
  const rough = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough)!;
  const out: number[] = [];
  for (let t = 0; t <= max + step * 0.999; t += step) out.push(t);
  return out;
}

/**
 * A horizontal bar chart of the times, fastest first: one bar per finished variant, its time at
 * the bar's end, a labelled time axis (logarithmic when the slowest is over 20× the fastest).
 */
export function renderSvg(rows: Row[], title: string): string {
  const done = sortRows(rows).filter((row) => row.result !== undefined);
  const times = done.map((row) => row.result!.ms);
  const log = times.length > 0 && Math.max(...times) / Math.min(...times) > 20;
  const tickValues = times.length === 0
    ? [0, 1]
    : ticks(Math.min(...times), Math.max(...times), log);
  const low = log ? tickValues[0]! : 0;
  const high = tickValues.at(-1)!;

  const width = 900;
  const left = 200;
  const right = 170;
  const top = 58;
  const barHeight = 26;
  const gap = 10;
  const plotWidth = width - left - right;
  const plotHeight = done.length * (barHeight + gap) + gap;
  const height = top + plotHeight + 60;
  const x = (ms: number) =>
    left +
    plotWidth * (log ? Math.log10(ms / low) / Math.log10(high / low) : ms / high);
  const colour = (kind: Variant["kind"]) =>
    kind === "libc" ? "#d95f02" : kind === "js" ? "#7570b3" : "#1b9e77";

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${
      escapeXml(title)
    }</text>`,
  ];
  for (const t of tickValues) {
    const tx = x(t).toFixed(1);
    out.push(
      `<line x1="${tx}" y1="${top}" x2="${tx}" y2="${top + plotHeight}" stroke="#dddddd"/>`,
      `<text x="${tx}" y="${top + plotHeight + 18}" text-anchor="middle" fill="#333333">${
        t >= 1000 ? `${t / 1000}k` : t
      }</text>`,
    );
  }
  done.forEach((row, i) => {
    const r = row.result!;
    const y = top + gap + i * (barHeight + gap);
    const w = Math.max(1, x(r.ms) - left);
    const label = r.complete ? `${formatMs(r.ms)} ms` : `≥ ${formatMs(r.ms)} ms (stopped)`;
    // A stopped run's bar is a lower bound: drawn lighter, with a dashed outline.
    const style = r.complete
      ? ""
      : ` fill-opacity="0.45" stroke="${colour(row.kind)}" stroke-dasharray="4 3"`;
    out.push(
      `<text x="${left - 8}" y="${y + barHeight / 2 + 4}" text-anchor="end">${
        escapeXml(row.variant)
      }</text>`,
      `<rect class="bar" x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${
        colour(row.kind)
      }"${style}><title>${escapeXml(`${row.variant}: ${label}`)}</title></rect>`,
      `<text x="${(left + w + 6).toFixed(1)}" y="${y + barHeight / 2 + 4}">${
        escapeXml(label)
      }</text>`,
    );
  });
  const legend: [Variant["kind"], string][] = [
    ["allocator", "allocators of @pseudo/malloc"],
    ["libc", "libc malloc through FFI"],
    ["js", "JS objects, garbage-collected"],
  ];
  legend.forEach(([kind, text], i) => {
    const lx = left + i * 210;
    out.push(
      `<rect x="${lx}" y="34" width="12" height="12" fill="${colour(kind)}"/>`,
      `<text x="${lx + 18}" y="44" font-size="12">${escapeXml(text)}</text>`,
    );
  });
  out.push(
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotHeight}" stroke="#333333"/>`,
    `<line x1="${left}" y1="${top + plotHeight}" x2="${left + plotWidth}" y2="${
      top + plotHeight
    }" stroke="#333333"/>`,
    `<text x="${left + plotWidth / 2}" y="${top + plotHeight + 42}" text-anchor="middle">${
      log ? "time (ms, logarithmic scale; shorter is faster)" : "time (ms; shorter is faster)"
    }</text>`,
    `<text x="16" y="${top + plotHeight / 2}" text-anchor="middle" transform="rotate(-90 16 ${
      top + plotHeight / 2
    })">variant</text>`,
    `</svg>`,
  );
  return out.join("\n") + "\n";
}

export function accessReport(access: AccessCost, depth: number, libcRow: Row | undefined): string {
  const perNode = (ns: number) => (ns - access.loopNs).toFixed(1);
  const inRun = (ns: number) => (((ns - access.loopNs) * nodeCount(depth)) / 1e6).toFixed(0);
  const libcMs = libcRow?.result === undefined ? "?" : formatMs(libcRow.result.ms);
  return [
    `libc memory access, measured apart on ${access.nodes.toLocaleString("en")} live libc ` +
    `blocks (per node what the program does: one write of both fields, two reads of both; the ` +
    `bare loop, ${access.loopNs.toFixed(1)} ns per node, is subtracted):`,
    `- 1 MiB windows, one ArrayBuffer each (the way the libc variant uses; the allocators' nodes ` +
    `are reached the same way, through one Float64Array per arena, chunk or pool): ${
      perNode(access.windowNs)
    } ns per node, ≈ ${inRun(access.windowNs)} ms of the libc variant's ${libcMs} ms;`,
    `- libc memcpy through FFI, to and from a 16-byte staging buffer: ${
      perNode(access.memcpyNs)
    } ns per node (≈ ${inRun(access.memcpyNs)} ms for the run);`,
    `- a pointer object per access (UnsafePointer.create, then getArrayBuffer to write and an ` +
    `UnsafePointerView to read): ${perNode(access.pointerNs)} ns per node (≈ ${
      inRun(access.pointerNs)
    } ms for the run).`,
  ].join("\n");
}
