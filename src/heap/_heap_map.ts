// Pictures of a heap: a text rendering for terminals and an SVG rendering for documents. Pure: it
// draws what it is given, so any allocator can describe its memory this way.

/** The state of a block in a picture. */
export type BlockState = "live" | "cached" | "free";

/** One block of an arena, for a picture. */
export interface PictureBlock {
  offset: number;
  size: number;
  order: number;
  state: BlockState;
}

/** One arena: its address, size and blocks in address order. */
export interface ArenaPicture {
  base: number;
  size: number;
  blocks: PictureBlock[];
}

/** One large block with its own mapping. */
export interface MappingPicture {
  address: number;
  length: number;
  requested: number;
}

const SHADES = ["·", "░", "▒", "▓", "█"];
/** Large mappings drawn one by one in an SVG; the others are summed up in one line. */
const MAPPINGS_DRAWN = 24;
const CELLS = 1024;
const ROW = 64;

function hex(value: number): string {
  return `0x${value.toString(16)}`;
}

function formatBytes(bytes: number): string {
  const format = (value: number) => Number.isInteger(value) ? String(value) : value.toFixed(1);
  if (bytes >= 1 << 20) return `${format(bytes / (1 << 20))} MiB`;
  if (bytes >= 1024) return `${format(bytes / 1024)} KiB`;
  return `${bytes} B`;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/**
 * Text: per arena a header line and 16 rows of 64 cells, each cell `size / 1024` bytes, shaded by
 * how much of it live blocks cover (`·` none, `░▒▓` some, `█` all); then one line per large mapping.
 */
export function renderText(arenas: ArenaPicture[], mappings: MappingPicture[]): string {
  const lines: string[] = [];
  arenas.forEach((arena, index) => {
    const used = new Float64Array(CELLS);
    const cellSize = arena.size / CELLS;
    let live = 0;
    for (const block of arena.blocks) {
      if (block.state !== "live") continue;
      live += block.size;
      for (let at = block.offset; at < block.offset + block.size;) {
        const cell = Math.floor(at / cellSize);
        const end = Math.min(block.offset + block.size, (cell + 1) * cellSize);
        used[cell]! += end - at;
        at = end;
      }
    }
    lines.push(
      `arena ${index} at ${hex(arena.base)}: ${arena.size - live} of ${arena.size} bytes free`,
    );
    for (let row = 0; row < CELLS; row += ROW) {
      let line = "";
      for (let cell = row; cell < row + ROW; cell++) {
        const fraction = used[cell]! / cellSize;
        line += SHADES[fraction === 0 ? 0 : fraction === 1 ? 4 : 1 + Math.floor(fraction * 2.999)];
      }
      lines.push(line);
    }
  });
  if (mappings.length > 0) {
    const total = mappings.reduce((sum, mapping) => sum + mapping.length, 0);
    lines.push(`${mappings.length} large mappings, ${total} bytes`);
  }
  return lines.join("\n");
}

// The SVG layout. An arena is 32 rows of 32 cells, a cell `size / 1024` bytes (a character of the
// text map: 1 KiB of a 1 MiB arena) drawn as a 32-pixel square, so one pixel is one byte there. A
// block of a cell or more covers cells in address order: part of a row, or whole rows. A smaller
// block lies inside one cell, whose pixels are numbered in Z-order (bit 0 of the number is x's bit
// 0, bit 1 is y's bit 0, bit 2 is x's bit 1, ...). A buddy block is an aligned run of `2^k` pixels,
// and such a run is a rectangle `2^ceil(k/2)` wide and `2^floor(k/2)` high at its first pixel: in a
// 1 KiB cell a 512-byte block is the left half (16 x 32), a 256-byte block a quarter (16 x 16), a
// 32-byte block 8 x 4 and a 16-byte block 4 x 4. Every split cuts a rectangle into two halves, and
// each block has a white edge, so the splits show at every order.
//
// Size: consecutive blocks of the same size and state that fill an aligned power-of-two run (2, 4,
// ... of them: a rectangle too) are one `<rect class="blocks ...">` filled with a pattern of one
// block, edge included, so an arena full of 16-byte blocks stays small. Blocks too small for a
// 4-pixel square (16 bytes of a 1 MiB arena; only arenas over 1 MiB have smaller ones) are drawn as
// the square holding them, `<rect class="group ...">`, hatched in their state's colour or, when
// states mix, in the colours mixed by bytes ("mixed"), without an edge (it is not one block); its
// title counts them. When an arena's rects would pass its share of `BLOCKS_TEXT`, the squares
// double (4 x 4 pixels, 8 x 4, 8 x 8, ...) until they fit, and the arena's header says so.

const SVG_ROW_CELLS = 32;
const SVG_ROWS = CELLS / SVG_ROW_CELLS;
const CELL_PX = 32;
const GRID_PX = SVG_ROW_CELLS * CELL_PX;
/** The side of the smallest square drawn: a cell holds 64 of them. */
const UNIT_PX = 4;
const UNITS_PER_CELL = (CELL_PX / UNIT_PX) ** 2;
/** Where the grids start: room for the row addresses. */
const LEFT = 130;
/**
 * The characters the blocks of all arenas may take (about 100 a rect), shared out evenly, but at
 * least `MIN_ARENA_TEXT` an arena: 8,000 rects for one arena, 2,700 each for three.
 */
const BLOCKS_TEXT = 800_000;
const MIN_ARENA_TEXT = 100_000;
const LEGEND_TOP = 38;
const LEGEND_HEIGHT = 70;
const STATES = ["live", "cached", "free"] as const;
const COLOURS: Record<BlockState, [number, number, number]> = {
  live: [47, 111, 183],
  cached: [240, 180, 41],
  free: [222, 222, 222],
};

/** A rectangle in pixels, relative to an arena's grid. */
interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** The even bits of `index` (x of a Z-order number), packed: 0b1011 -> 0b01. */
function evenBits(index: number): number {
  let bits = 0;
  for (let bit = 0; index >>> (2 * bit) !== 0; bit++) bits |= ((index >>> (2 * bit)) & 1) << bit;
  return bits;
}

/** Where the `size` bytes at `offset` of an arena of `cellBytes` cells are drawn (see above). */
function blockRect(offset: number, size: number, cellBytes: number): Rect {
  const cell = Math.floor(offset / cellBytes);
  const x = (cell % SVG_ROW_CELLS) * CELL_PX;
  const y = Math.floor(cell / SVG_ROW_CELLS) * CELL_PX;
  if (size >= cellBytes) {
    const cells = size / cellBytes;
    return cells >= SVG_ROW_CELLS
      ? { x: 0, y, w: GRID_PX, h: (cells / SVG_ROW_CELLS) * CELL_PX }
      : { x, y, w: cells * CELL_PX, h: CELL_PX };
  }
  const pixel = ((offset - cell * cellBytes) / cellBytes) * CELL_PX * CELL_PX;
  const k = Math.round(Math.log2((size / cellBytes) * CELL_PX * CELL_PX));
  return {
    x: x + evenBits(pixel),
    y: y + evenBits(pixel >>> 1),
    w: 2 ** Math.ceil(k / 2),
    h: 2 ** Math.floor(k / 2),
  };
}

function rgb([r, g, b]: [number, number, number]): string {
  const byte = (value: number) => Math.round(value).toString(16).padStart(2, "0");
  return `#${byte(r)}${byte(g)}${byte(b)}`;
}

function rectAt({ x, y, w, h }: Rect): string {
  return `x="${x}" y="${y}" width="${w}" height="${h}"`;
}

/** Counts and bytes per state. */
function tally(blocks: PictureBlock[]): Record<BlockState, { count: number; bytes: number }> {
  const sums = {
    live: { count: 0, bytes: 0 },
    cached: { count: 0, bytes: 0 },
    free: { count: 0, bytes: 0 },
  };
  for (const block of blocks) {
    sums[block.state].count++;
    sums[block.state].bytes += block.size;
  }
  return sums;
}

/** Draws arenas, gathering the patterns their runs use. */
class ArenaDrawer {
  /** Pattern definitions by id: one block of a state and shape, edge included. */
  readonly patterns = new Map<string, string>();
  readonly out: string[];
  /** The characters an arena's blocks may take. */
  readonly budget: number;
  /** Whether some arena has blocks too small to draw one by one. */
  grouped = false;

  constructor(out: string[], arenas: number) {
    this.out = out;
    this.budget = Math.max(MIN_ARENA_TEXT, Math.floor(BLOCKS_TEXT / Math.max(1, arenas)));
  }

  /** One arena at `top`: header, offsets of a row's cells, row addresses, blocks; returns the next y. */
  arena(arena: ArenaPicture, index: number, top: number): number {
    const { out } = this;
    const cellBytes = arena.size / CELLS;
    // The blocks, with squares of `unit` bytes for the smallest: doubled while over the budget.
    let unit = cellBytes / UNITS_PER_CELL;
    let drawn = this.#blocks(arena, cellBytes, unit);
    while (drawn.length > this.budget) drawn = this.#blocks(arena, cellBytes, unit *= 2);
    for (const [id, pattern] of drawn.patterns) this.patterns.set(id, pattern);
    this.grouped ||= drawn.grouped;
    const sums = tally(arena.blocks);
    const summary = STATES.map((state) =>
      `${formatBytes(sums[state].bytes)} ${state} in ${plural(sums[state].count, "block")}`
    ).join(", ");
    out.push(`<g class="arena" data-base="${hex(arena.base)}">`);
    out.push(
      `<text x="10" y="${top + 14}" class="heading">arena ${index} at ${hex(arena.base)}, ${
        formatBytes(arena.size)
      }: ${summary}; ${sums.free.bytes + sums.cached.bytes} of ${arena.size} bytes free</text>`,
    );
    if (unit > cellBytes / UNITS_PER_CELL && drawn.grouped) {
      out.push(
        `<text x="10" y="${top + 30}">Blocks under ${
          formatBytes(unit)
        } are drawn as the squares that hold them, to keep the picture small.</text>`,
      );
      top += 16;
    }
    const grid = top + 40;
    for (let cell = 0; cell < SVG_ROW_CELLS; cell += 4) {
      const x = LEFT + cell * CELL_PX;
      out.push(`<path d="M${x} ${grid - 6}v6" class="tick"/>`);
      const label = cell === 0 ? "+0" : `+${formatBytes(cell * cellBytes)}`;
      out.push(`<text x="${x + 2}" y="${grid - 8}" class="small">${label}</text>`);
    }
    for (let row = 0; row < SVG_ROWS; row++) {
      out.push(
        `<text x="${LEFT - 6}" y="${grid + row * CELL_PX + 20}" class="small end">${
          hex(arena.base + row * SVG_ROW_CELLS * cellBytes)
        }</text>`,
      );
    }
    out.push(`<g transform="translate(${LEFT} ${grid})">`, ...drawn.rects);
    out.push(`<rect width="${GRID_PX}" height="${SVG_ROWS * CELL_PX}" class="outline"/>`);
    out.push(`</g>`, `</g>`);
    return grid + SVG_ROWS * CELL_PX + 24;
  }

  /**
   * The rects of an arena's blocks, blocks under `unit` bytes gathered in squares of `unit`; stops
   * once they pass the budget (`length` says so).
   */
  #blocks(
    arena: ArenaPicture,
    cellBytes: number,
    unit: number,
  ): { rects: string[]; length: number; patterns: Map<string, string>; grouped: boolean } {
    const { blocks } = arena;
    const rects: string[] = [];
    const patterns = new Map<string, string>();
    let grouped = false;
    let length = 0;
    const emit = (rect: string): void => {
      rects.push(rect);
      length += rect.length + 1;
    };
    for (let i = 0; i < blocks.length && length <= this.budget;) {
      const first = blocks[i]!;
      if (first.size < unit) {
        // Every block of this square is smaller than it (blocks tile the arena, aligned).
        const start = first.offset - (first.offset % unit);
        let end = i + 1;
        while (end < blocks.length && blocks[end]!.offset < start + unit) end++;
        const rect = blockRect(start, unit, cellBytes);
        emit(group(arena.base + start, blocks.slice(i, end), rect, patterns));
        grouped = true;
        i = end;
        continue;
      }
      // The run of blocks like `first`, drawn in aligned power-of-two pieces.
      let end = i + 1;
      while (
        end < blocks.length && blocks[end]!.state === first.state &&
        blocks[end]!.size === first.size &&
        blocks[end]!.offset === blocks[end - 1]!.offset + first.size
      ) end++;
      while (i < end) {
        const { offset, size, state } = blocks[i]!;
        let count = 1;
        while (i + 2 * count <= end && offset % (2 * count * size) === 0) count *= 2;
        const rect = blockRect(offset, size * count, cellBytes);
        const where = `${hex(arena.base + offset)}: `;
        if (count === 1) {
          emit(
            `<rect class="block ${state}" ${rectAt(rect)}><title>${where}${
              formatBytes(size)
            } ${state}</title></rect>`,
          );
        } else {
          const id = pattern(state, blockRect(offset, size, cellBytes), patterns);
          emit(
            `<rect class="blocks ${state}" ${
              rectAt(rect)
            } style="fill:url(#${id})"><title>${where}${plural(count, `${state} block`)} of ${
              formatBytes(size)
            }</title></rect>`,
          );
        }
        i += count;
      }
    }
    return { rects, length, patterns, grouped };
  }
}

/** The id of the pattern of one `state` block of `rect`'s shape, added to `patterns`. */
function pattern(state: BlockState, { w, h }: Rect, patterns: Map<string, string>): string {
  const id = `${state}-${w}x${h}`;
  if (!patterns.has(id)) {
    patterns.set(
      id,
      `<pattern id="${id}" width="${w}" height="${h}" patternUnits="userSpaceOnUse"><rect width="${w}" height="${h}" fill="#fff"/><rect x="0.5" y="0.5" width="${
        w - 1
      }" height="${h - 1}" fill="${rgb(COLOURS[state])}"/></pattern>`,
    );
  }
  return id;
}

/** The id of the hatched fill of `state`'s groups, added to `patterns`. */
function hatch(state: BlockState, patterns: Map<string, string>): string {
  const id = `hatch-${state}`;
  patterns.set(
    id,
    `<pattern id="${id}" width="4" height="4" patternUnits="userSpaceOnUse"><rect width="4" height="4" fill="${
      rgb(COLOURS[state])
    }"/><path d="M-1 1l2-2M0 4l4-4M3 5l2-2" stroke="#fff" stroke-width="0.7"/></pattern>`,
  );
  return id;
}

/**
 * The square holding `blocks`, all smaller than it: hatched in their state's colour, or (states
 * mixed) the colours mixed by bytes; no edge, since it is not one block.
 */
function group(
  address: number,
  blocks: PictureBlock[],
  rect: Rect,
  patterns: Map<string, string>,
): string {
  const sums = tally(blocks);
  const states = STATES.filter((state) => sums[state].count > 0);
  const bytes = states.reduce((sum, state) => sum + sums[state].bytes, 0);
  const mix = [0, 1, 2].map((channel) =>
    states.reduce((sum, state) => sum + COLOURS[state][channel]! * sums[state].bytes, 0) / bytes
  ) as [number, number, number];
  const kind = states.length === 1 ? states[0]! : "mixed";
  const fill = kind === "mixed"
    ? ` fill="${rgb(mix)}"`
    : ` style="fill:url(#${hatch(kind, patterns)})"`;
  return (
    `<rect class="group ${kind}" ${rectAt(rect)}${fill}><title>${hex(address)}: ${
      formatBytes(bytes)
    } in ${plural(blocks.length, "block")} (${
      states.map((state) => `${sums[state].count} ${state}`).join(", ")
    })</title></rect>`
  );
}

/** The legend: a swatch per state, then the scale. */
function drawLegend(
  arenas: ArenaPicture[],
  grouped: boolean,
  patterns: Map<string, string>,
  out: string[],
): void {
  const top = LEGEND_TOP;
  const entries: [string, string][] = [
    ["live", "live (allocated, in use)"],
    ["cached", "cached (freed, kept for reuse)"],
    ["free", "free (in the buddy allocator)"],
  ];
  entries.forEach(([state, label], i) => {
    const x = 10 + i * 250;
    out.push(`<rect x="${x}" y="${top}" width="14" height="14" class="swatch ${state}"/>`);
    out.push(`<text x="${x + 20}" y="${top + 12}">${label}</text>`);
  });
  if (grouped) {
    const x = 10 + entries.length * 250;
    out.push(
      `<rect x="${x}" y="${top}" width="14" height="14" class="swatch hatched" style="fill:url(#${
        hatch("live", patterns)
      })"/>`,
      `<rect x="${x + 18}" y="${top}" width="14" height="14" class="swatch mixed" fill="${
        rgb([135, 167, 203])
      }"/>`,
      `<text x="${x + 38}" y="${
        top + 12
      }">blocks too small to draw: one state (hatched), mixed</text>`,
    );
  }
  const sizes = [...new Set(arenas.map((arena) => arena.size))];
  const cellBytes = sizes.length === 1 ? sizes[0]! / CELLS : 0;
  const scale = cellBytes > 0
    ? `a cell is ${formatBytes(cellBytes)} (a character of the text map), a row ${
      formatBytes(cellBytes * SVG_ROW_CELLS)
    }, the smallest square ${formatBytes(cellBytes / UNITS_PER_CELL)}`
    : "a cell is 1/1024 of its arena";
  out.push(
    `<text x="10" y="${
      top + 34
    }">Each arena: ${SVG_ROWS} rows of ${SVG_ROW_CELLS} square cells in address order; ${scale}.</text>`,
    `<text x="10" y="${
      top + 52
    }">Inside a cell the halves of a split block sit side by side, their halves one above the other, and so on: every block is a rectangle with a white edge.</text>`,
  );
}

/**
 * SVG: a legend (states and scale), then per arena a header (address, bytes and blocks live,
 * cached and free) and a grid of 32 rows of 32 square cells, each `size / 1024` bytes as a
 * character of the text map, every block a `<rect class="block live|cached|free">` with a white
 * edge (blocks under a cell in Z-order inside it, so the buddy splits show as rectangles cut in
 * two, down to 4-pixel squares: 16 bytes of a 1 MiB arena), runs of like blocks one
 * `<rect class="blocks ...">` with a pattern, blocks under 4 pixels a `<rect class="group ...">`
 * (see the layout above). Then one bar per large mapping (the first 24; a line sums up the rest),
 * its requested part filled. Deterministic: the same blocks give the same text.
 */
export function renderSvg(arenas: ArenaPicture[], mappings: MappingPicture[]): string {
  const width = GRID_PX;
  const parts: string[] = [];
  parts.push(
    `<text x="10" y="24" class="title">Heap map: ${plural(arenas.length, "arena")}, ${
      plural(mappings.length, "large mapping")
    }</text>`,
  );
  // The arenas first, to know whether the legend needs "mixed"; the legend goes above them.
  const drawn: string[] = [];
  const drawer = new ArenaDrawer(drawn, arenas.length);
  let y = LEGEND_TOP + LEGEND_HEIGHT;
  arenas.forEach((arena, index) => {
    y = drawer.arena(arena, index, y);
  });
  drawLegend(arenas, drawer.grouped, drawer.patterns, parts);
  parts.push(...drawn);
  if (mappings.length > 0) {
    parts.push(
      `<text x="10" y="${
        y + 14
      }" class="heading">Large blocks, each in its own mapping: bar length by size, the requested part dark</text>`,
    );
    y += 24;
  }
  const longest = Math.max(1, ...mappings.map((mapping) => mapping.length));
  for (const mapping of mappings.slice(0, MAPPINGS_DRAWN)) {
    const w = (mapping.length / longest) * width;
    const used = (mapping.requested / longest) * width;
    parts.push(`<g class="mapping">`);
    parts.push(`<text x="10" y="${y + 14}">${hex(mapping.address)}</text>`);
    parts.push(
      `<rect x="${LEFT}" y="${y}" width="${
        w.toFixed(3)
      }" height="18" fill="#dde6f5" stroke="#333"/>`,
    );
    parts.push(
      `<rect x="${LEFT}" y="${y}" width="${used.toFixed(3)}" height="18" fill="#4a78c2"><title>${
        formatBytes(mapping.length)
      } mapped, ${mapping.requested} B requested</title></rect>`,
    );
    parts.push(`</g>`);
    y += 18 + 6;
  }
  if (mappings.length > MAPPINGS_DRAWN) {
    const rest = mappings.slice(MAPPINGS_DRAWN);
    const bytes = rest.reduce((sum, mapping) => sum + mapping.length, 0);
    parts.push(
      `<text x="${LEFT}" y="${y + 14}">… and ${plural(rest.length, "more large mapping")}, ${
        formatBytes(bytes)
      } in all</text>`,
    );
    y += 24;
  }
  y += 10;
  const [live, cached, free] = STATES.map((state) => rgb(COLOURS[state]));
  const total = LEFT + width + 20;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${total}" height="${y}" viewBox="0 0 ${total} ${y}" font-family="sans-serif" font-size="12">`,
    `<style>.title { font-size: 15px; font-weight: bold; } .heading { font-weight: bold; } .small { font-size: 10px; } .end { text-anchor: end; } .block, .blocks { stroke: #fff; stroke-width: 1; } .live { fill: ${live}; } .cached { fill: ${cached}; } .free { fill: ${free}; } .outline { fill: none; stroke: #555; } .tick { stroke: #555; } .swatch { stroke: #333; }</style>`,
    ...(drawer.patterns.size > 0 ? [`<defs>`, ...drawer.patterns.values(), `</defs>`] : []),
    `<rect width="100%" height="100%" fill="white"/>`,
    ...parts,
    `</svg>`,
  ].join("\n");
}
