// The counters behind every allocator's stats(), kept in one place so they mean the same everywhere.

import type { AllocatorStats } from "./allocator.ts";
import type { SystemCalls } from "../ffi/counting_os.ts";

/** Live, peak and total counters. Peaks are noted after each public call, not inside one. */
export class Counters {
  liveBytes = 0;
  peakLiveBytes = 0;
  peakMappedBytes = 0;
  totalAllocations = 0;
  totalFrees = 0;

  /** Blocks handed out and not given back: derived, so that each call updates one count less. */
  get liveAllocations(): number {
    return this.totalAllocations - this.totalFrees;
  }

  /** A block of `size` requested bytes was handed out. */
  allocated(size: number): void {
    this.totalAllocations++;
    this.liveBytes += size;
  }

  /** A block of `size` requested bytes was given back. */
  freed(size: number): void {
    this.totalFrees++;
    this.liveBytes -= size;
  }

  /** Records the peaks; called at the end of every call that allocates. */
  notePeaks(mappedBytes: number): void {
    this.noteLivePeak();
    if (mappedBytes > this.peakMappedBytes) this.peakMappedBytes = mappedBytes;
  }

  /** Records the live-bytes peak alone: for a call that mapped nothing. */
  noteLivePeak(): void {
    if (this.liveBytes > this.peakLiveBytes) this.peakLiveBytes = this.liveBytes;
  }

  /** The counters as a fresh stats object, with a copy of the system calls made so far. */
  snapshot(mappedBytes: number, allocatedBytes: number, systemCalls: SystemCalls): AllocatorStats {
    return {
      mappedBytes,
      peakMappedBytes: Math.max(this.peakMappedBytes, mappedBytes),
      liveAllocations: this.liveAllocations,
      liveBytes: this.liveBytes,
      peakLiveBytes: this.peakLiveBytes,
      allocatedBytes,
      totalAllocations: this.totalAllocations,
      totalFrees: this.totalFrees,
      systemCalls: { ...systemCalls },
    };
  }
}
