// The SVG heap map (src/heap/_heap_map.ts `renderSvg`, through `PseudoMalloc.heapMap`): well-formed
// XML, each arena drawn in rows with every block visible as a rectangle at its place (the buddy
// splits), a legend, runs and small blocks drawn compactly. Pure: most tests give it blocks.
import assert from "node:assert/strict";
import { PseudoMalloc } from "../mod.ts";
import {
  type ArenaPicture,
  type BlockState,
  type PictureBlock,
  renderSvg,
} from "../src/heap/_heap_map.ts";

/** An element of a parsed document: its name, attributes and text (its title's, for a rect). */
interface Element {
  name: string;
  attributes: Record<string, string>;
  text: string;
  parent: Element | undefined;
}

const NAME = /[A-Za-z_][\w.-]*/y;
const SPACE = /\s*/y;
const ATTRIBUTE = /([A-Za-z_:][\w.:-]*)="([^"<]*)"/y;
const ENTITY = /&(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/y;

/** The match of the sticky `pattern` at `at` in `text`, or undefined. */
function matchAt(pattern: RegExp, text: string, at: number): RegExpExecArray | undefined {
  pattern.lastIndex = at;
  return pattern.exec(text) ?? undefined;
}

/**
 * Parses `xml`, throwing at the first thing that is not well-formed XML (one root, nested and
 * closed tags, quoted attributes without `<` or a bare `&`, no attribute twice, entities only the
 * predefined ones and character references); returns the elements in document order.
 */
function parseXml(xml: string): Element[] {
  const elements: Element[] = [];
  const open: Element[] = [];
  let roots = 0;
  let at = 0;
  const fail = (what: string): never => {
    throw new Error(`not well-formed at ${at}: ${what}: ${xml.slice(at, at + 40)}`);
  };
  const checkText = (text: string): void => {
    for (let i = text.indexOf("&"); i >= 0; i = text.indexOf("&", i + 1)) {
      if (matchAt(ENTITY, text, i) === undefined) fail("a bare &");
    }
  };
  while (at < xml.length) {
    const lt = xml.indexOf("<", at);
    const text = xml.slice(at, lt < 0 ? xml.length : lt);
    if (text.trim() !== "") {
      if (open.length === 0) fail("text outside the root");
      checkText(text);
      open[open.length - 1]!.text += text;
    }
    if (lt < 0) break;
    at = lt;
    if (xml.startsWith("<!--", at)) {
      const end = xml.indexOf("-->", at);
      if (end < 0) fail("an unclosed comment");
      at = end + 3;
    } else if (xml.startsWith("<?", at)) {
      const end = xml.indexOf("?>", at);
      if (end < 0 || elements.length > 0) fail("a misplaced declaration");
      at = end + 2;
    } else if (xml.startsWith("</", at)) {
      const name = matchAt(NAME, xml, at + 2)?.[0] ?? fail("a closing tag without a name");
      const element = open.pop() ?? fail(`</${name}> closes nothing`);
      if (element.name !== name) fail(`</${name}> closes <${element.name}>`);
      at += 2 + name.length;
      at += matchAt(SPACE, xml, at)![0].length;
      if (xml[at] !== ">") fail("a closing tag not ended");
      at++;
    } else {
      const name = matchAt(NAME, xml, at + 1)?.[0] ?? fail("a tag without a name");
      at += 1 + name.length;
      const attributes: Record<string, string> = {};
      for (;;) {
        const space = matchAt(SPACE, xml, at)![0].length;
        at += space;
        if (xml.startsWith("/>", at) || xml[at] === ">") break;
        if (space === 0) fail("attributes not separated");
        const attribute = matchAt(ATTRIBUTE, xml, at) ?? fail("a malformed attribute");
        if (Object.hasOwn(attributes, attribute[1]!)) fail(`attribute ${attribute[1]} twice`);
        checkText(attribute[2]!);
        attributes[attribute[1]!] = attribute[2]!;
        at += attribute[0].length;
      }
      if (open.length === 0 && roots++ > 0) fail("a second root");
      const element = { name, attributes, text: "", parent: open[open.length - 1] };
      elements.push(element);
      if (xml[at] === ">") {
        open.push(element);
        at++;
      } else {
        at += 2;
      }
    }
  }
  if (open.length > 0) throw new Error(`not well-formed: <${open.at(-1)!.name}> is not closed`);
  if (roots !== 1) throw new Error("not well-formed: no root element");
  return elements;
}

/** The drawn rectangles of the arenas' blocks, with their title. */
function blockRects(
  elements: Element[],
): { kind: string; state: string; title: string; x: number; y: number; w: number; h: number }[] {
  const titles = new Map<Element | undefined, Element>();
  for (const element of elements) if (element.name === "title") titles.set(element.parent, element);
  return elements.filter((element) =>
    element.name === "rect" && /^(block|blocks|group) /.test(element.attributes.class ?? "")
  ).map((element) => {
    const [kind, state] = element.attributes.class!.split(" ") as [string, string];
    const title = titles.get(element);
    const number = (name: string) => Number(element.attributes[name]);
    return {
      kind,
      state,
      title: title?.text ?? "",
      x: number("x"),
      y: number("y"),
      w: number("width"),
      h: number("height"),
    };
  });
}

/**
 * The blocks of a buddy arena of `size` where `taken` (offset, size, state) are allocated: every
 * other byte is in the largest free blocks the splits leave, as a buddy allocator keeps them.
 */
function buddyArena(
  size: number,
  taken: [number, number, BlockState][],
  base = 0x10000000,
): ArenaPicture {
  const blocks: PictureBlock[] = [];
  const sorted = [...taken].sort((a, b) => a[0] - b[0]);
  // Splits the region at `offset` whose taken blocks are sorted[from..to).
  const split = (offset: number, length: number, from: number, to: number): void => {
    const order = Math.log2(length / 16);
    if (from === to) {
      blocks.push({ offset, size: length, order, state: "free" });
    } else if (to - from === 1 && sorted[from]![0] === offset && sorted[from]![1] === length) {
      blocks.push({ offset, size: length, order, state: sorted[from]![2] });
    } else {
      let middle = from;
      while (middle < to && sorted[middle]![0] < offset + length / 2) middle++;
      split(offset, length / 2, from, middle);
      split(offset + length / 2, length / 2, middle, to);
    }
  };
  split(0, size, 0, sorted.length);
  return { base, size, blocks };
}

/** A seeded generator of numbers in [0, 1) (mulberry32). */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Checks that `rects` cover the 1024 x 1024 grid exactly once each pixel. */
function assertTiles(rects: { x: number; y: number; w: number; h: number }[]): void {
  const covered = new Uint8Array(1024 * 1024);
  for (const { x, y, w, h } of rects) {
    assert.ok([x, y, w, h].every(Number.isInteger) && w > 0 && h > 0, `${x},${y} ${w}x${h}`);
    assert.ok(x + w <= 1024 && y + h <= 1024, `${x},${y} ${w}x${h} leaves the grid`);
    for (let row = y; row < y + h; row++) {
      for (let column = x; column < x + w; column++) {
        if (covered[row * 1024 + column]++ !== 0) assert.fail(`${column},${row} drawn twice`);
      }
    }
  }
  assert.equal(covered.indexOf(0), -1, "a pixel of the arena is not drawn");
}

Deno.test("parseXml rejects what is not well-formed", () => {
  parseXml(`<svg a="1"><g><rect b="&amp;"/><text>x &lt; y</text></g></svg>`);
  for (
    const bad of [
      "<svg><g></svg>",
      "<svg></svg><svg></svg>",
      '<svg a="1" a="2"/>',
      "<svg a=1/>",
      "<svg><text>a & b</text></svg>",
      "<svg><rect/>",
      '<svg><rect x="1"y="2"/></svg>',
    ]
  ) {
    assert.throws(() => parseXml(bad), /not well-formed/, bad);
  }
});

Deno.test("renderSvg draws a 1 MiB arena in 32 rows of 1 KiB cells, every order a rectangle", () => {
  // A live 16-byte block at the start: the splits leave one free block of each order up to 512 KiB.
  const arena = buddyArena(1 << 20, [[0, 16, "live"]]);
  const elements = parseXml(renderSvg([arena], []));
  const rects = blockRects(elements);
  assert.equal(rects.length, 17);
  const at = (title: string) => {
    const rect = rects.find((rect) => rect.title === title);
    assert.ok(rect, title);
    return [rect.x, rect.y, rect.w, rect.h];
  };
  // Inside the first cell (32 x 32 pixels, a byte a pixel), halves side by side, then stacked.
  assert.deepEqual(at("0x10000000: 16 B live"), [0, 0, 4, 4]);
  assert.deepEqual(at("0x10000010: 16 B free"), [4, 0, 4, 4]);
  assert.deepEqual(at("0x10000020: 32 B free"), [0, 4, 8, 4]);
  assert.deepEqual(at("0x10000040: 64 B free"), [8, 0, 8, 8]);
  assert.deepEqual(at("0x10000080: 128 B free"), [0, 8, 16, 8]);
  assert.deepEqual(at("0x10000100: 256 B free"), [16, 0, 16, 16]);
  assert.deepEqual(at("0x10000200: 512 B free"), [0, 16, 32, 16]);
  // From a cell up, cells in address order along a row of 32, then whole rows.
  assert.deepEqual(at("0x10000400: 1 KiB free"), [32, 0, 32, 32]);
  assert.deepEqual(at("0x10004000: 16 KiB free"), [512, 0, 512, 32]);
  assert.deepEqual(at("0x10008000: 32 KiB free"), [0, 32, 1024, 32]);
  assert.deepEqual(at("0x10080000: 512 KiB free"), [0, 512, 1024, 512]);
  assertTiles(rects);
  // The live block has the live class, which the style fills: a visible 4-pixel square.
  const live = rects.filter((rect) => rect.state === "live");
  assert.equal(live.length, 1);
  assert.equal(live[0]!.kind, "block");
  const style = elements.find((element) => element.name === "style")!.text;
  assert.match(style, /\.live \{ fill: #[0-9a-f]{6}; \}/);
  // 32 rows, each labelled with its address.
  const labels = elements.filter((element) => element.attributes.class === "small end");
  assert.equal(labels.length, 32);
  assert.equal(labels[1]!.text, "0x10008000");
  assert.equal(labels[31]!.text, "0x100f8000");
});

Deno.test("renderSvg has a legend of the states and the scale, and arena headers", () => {
  const arena = buddyArena(1 << 20, [[0, 64, "live"], [64, 64, "cached"]]);
  const svg = renderSvg([arena], [{
    address: 0x7f0000000000,
    length: 1 << 20,
    requested: 900_000,
  }]);
  const elements = parseXml(svg);
  const swatches = elements.filter((element) => element.attributes.class?.startsWith("swatch "));
  assert.deepEqual(swatches.map((element) => element.attributes.class), [
    "swatch live",
    "swatch cached",
    "swatch free",
  ]);
  const texts = elements.filter((element) => element.name === "text").map((element) =>
    element.text
  );
  assert.ok(
    texts.some((text) => /a cell is 1 KiB .*a row 32 KiB, the smallest square 16 B/.test(text)),
  );
  assert.ok(texts.includes(
    "arena 0 at 0x10000000, 1 MiB: 64 B live in 1 block, 64 B cached in 1 block, " +
      "1023.9 KiB free in 13 blocks; 1048512 of 1048576 bytes free",
  ));
  assert.equal(elements.filter((element) => element.attributes.class === "mapping").length, 1);
  assert.ok(texts.includes("0x7f0000000000"));
});

Deno.test("renderSvg draws a run of like blocks as one rect with a pattern of one block", () => {
  // 64 live 16-byte blocks fill the first cell; two cached 512-byte blocks the second.
  const taken: [number, number, BlockState][] = [];
  for (let offset = 0; offset < 1024; offset += 16) taken.push([offset, 16, "live"]);
  taken.push([1024, 512, "cached"], [1536, 512, "cached"]);
  const svg = renderSvg([buddyArena(1 << 20, taken)], []);
  const elements = parseXml(svg);
  const rects = blockRects(elements);
  const runs = rects.filter((rect) => rect.kind === "blocks");
  assert.deepEqual(runs.map((run) => [run.state, run.title, run.x, run.y, run.w, run.h]), [
    ["live", "0x10000000: 64 live blocks of 16 B", 0, 0, 32, 32],
    ["cached", "0x10000400: 2 cached blocks of 512 B", 32, 0, 32, 32],
  ]);
  const pattern = elements.find((element) => element.attributes.id === "live-4x4");
  assert.ok(pattern && pattern.name === "pattern" && pattern.parent?.name === "defs");
  assert.equal(pattern.attributes.width, "4");
  assert.equal(pattern.attributes.height, "4");
  assert.match(svg, /<rect class="blocks live" [^>]*style="fill:url\(#live-4x4\)"/);
  assertTiles(rects);
});

Deno.test("renderSvg tiles the grid exactly for random buddy arenas (seed 12)", () => {
  const next = random(12);
  for (let round = 0; round < 8; round++) {
    const taken: [number, number, BlockState][] = [];
    let offset = 0;
    while (offset < 1 << 20) {
      const size = 16 << Math.floor(next() ** 3 * 12); // mostly small
      offset = Math.ceil(offset / size) * size;
      if (offset + size > 1 << 20) break;
      const pick = next();
      if (pick < 0.6) taken.push([offset, size, "live"]);
      else if (pick < 0.7) taken.push([offset, size, "cached"]);
      offset += size * (1 + Math.floor(next() * 3));
    }
    const arena = buddyArena(1 << 20, taken);
    const rects = blockRects(parseXml(renderSvg([arena], [])));
    assertTiles(rects);
    // Every block is in one rect: one block each, or as many as a run's title says.
    const drawn = rects.reduce(
      (sum, rect) => sum + (rect.kind === "block" ? 1 : Number(/: (\d+) /.exec(rect.title)![1])),
      0,
    );
    assert.equal(drawn, arena.blocks.length);
  }
});

Deno.test("renderSvg gathers blocks too small to draw into squares that count them", () => {
  // A 64 MiB arena: a cell is 64 KiB, the smallest square 1 KiB = 64 blocks of 16 bytes.
  const taken: [number, number, BlockState][] = [[0, 16, "live"], [32, 16, "cached"]];
  for (let offset = 1024; offset < 2048; offset += 16) taken.push([offset, 16, "live"]);
  const elements = parseXml(renderSvg([buddyArena(64 << 20, taken)], []));
  const groups = blockRects(elements).filter((rect) => rect.kind === "group");
  assert.deepEqual(groups.map((group) => [group.state, group.title, group.x, group.y, group.w]), [
    ["mixed", "0x10000000: 1 KiB in 8 blocks (1 live, 1 cached, 6 free)", 0, 0, 4],
    ["live", "0x10000400: 1 KiB in 64 blocks (64 live)", 4, 0, 4],
  ]);
  // One state: hatched in its colour; mixed: a tint; neither has a block's white edge.
  const live = elements.find((element) => element.attributes.class === "group live")!;
  assert.equal(live.attributes.style, "fill:url(#hatch-live)");
  assert.equal(elements.find((element) => element.attributes.id === "hatch-live")?.name, "pattern");
  assert.match(elements.find((e) => e.attributes.class === "group mixed")!.attributes.fill!, /^#/);
  const style = elements.find((element) => element.name === "style")!.text;
  assert.doesNotMatch(style, /\.group[ ,{]/);
  assert.ok(elements.some((element) => element.attributes.class === "swatch mixed"));
  assertTiles(blockRects(elements));
});

Deno.test("renderSvg stays small for the worst arena: 16-byte blocks alternately live and free", () => {
  const taken: [number, number, BlockState][] = [];
  for (let offset = 0; offset < 1 << 20; offset += 32) taken.push([offset, 16, "live"]);
  const arena = buddyArena(1 << 20, taken);
  assert.equal(arena.blocks.length, 65536);
  // Three such arenas: one rect a block would be 7 MB of text.
  const bases = [0x10000000, 0x10100000, 0x10200000];
  const svg = renderSvg(bases.map((base) => ({ ...arena, base })), []);
  assert.ok(svg.length < 1_000_000, `${svg.length} bytes`);
  const elements = parseXml(svg);
  const notes = elements.map((element) =>
    /^Blocks under (\d+) (B|KiB) are drawn as the squares/.exec(element.text)
  )
    .filter((note) => note !== null);
  assert.equal(notes.length, 3);
  const unit = Number(notes[0]![1]) * (notes[0]![2] === "KiB" ? 1024 : 1);
  assert.ok(unit >= 32, `${unit}`);
  const rects = blockRects(elements);
  assert.equal(rects.length, 3 * (1 << 20) / unit);
  // A byte a pixel: each square holds `unit` bytes, half of them in live blocks.
  for (const rect of rects) {
    assert.equal(rect.kind, "group");
    assert.equal(rect.state, "mixed");
    assert.equal(rect.w * rect.h, unit);
    assert.match(
      rect.title,
      new RegExp(
        `: ${notes[0]![1]} ${notes[0]![2]} in ${unit / 16} blocks \\(${unit / 32} live, ${
          unit / 32
        } free\\)$`,
      ),
    );
  }
  assertTiles(rects.slice(0, rects.length / 3));
});

Deno.test("PseudoMalloc.heapMap as SVG: a 16-byte live block is a visible square of its own", () => {
  using heap = new PseudoMalloc();
  const address = heap.malloc(16);
  heap.malloc(40_000); // a large block in its own mapping
  const svg = heap.heapMap({ format: "svg" });
  const elements = parseXml(svg);
  assert.equal(elements[0]!.name, "svg");
  assert.equal(elements[0]!.attributes.xmlns, "http://www.w3.org/2000/svg");
  const rects = blockRects(elements);
  const live = rects.filter((rect) => rect.state === "live");
  assert.equal(live.length, 1);
  assert.equal(live[0]!.title, `0x${address.toString(16)}: 16 B live`);
  assert.ok(live[0]!.w >= 4 && live[0]!.h >= 4, `${live[0]!.w}x${live[0]!.h}`);
  assertTiles(rects);
  assert.equal(elements.filter((element) => element.attributes.class === "mapping").length, 1);
  assert.equal(svg, heap.heapMap({ format: "svg" })); // deterministic
});
