// The counters behind every allocator's stats(), kept in one place so they mean the same everywhere.

import type { AllocatorStats } from "./allocator.ts";

/** Live, peak and total counters. Peaks are noted after each public call, not inside one. */
export class Counters {
  liveAllocations = 0;
  liveBytes = 0;
  peakLiveBytes = 0;
  peakMappedBytes = 0;
  totalAllocations = 0;
  totalFrees = 0;

  /** A block of `size` requested bytes was handed out. */
  allocated(size: number): void {
    this.liveAllocations++;
    this.totalAllocations++;
    this.liveBytes += size;
  }

  /** A block of `size` requested bytes was given back. */
  freed(size: number): void {
    this.liveAllocations--;
    this.totalFrees++;
    this.liveBytes -= size;
  }

  /** Records the peaks; called at the end of every call that allocates. */
  notePeaks(mappedBytes: number): void {
    if (this.liveBytes > this.peakLiveBytes) this.peakLiveBytes = this.liveBytes;
    if (mappedBytes > this.peakMappedBytes) this.peakMappedBytes = mappedBytes;
  }

  /** The counters as a fresh stats object. */
  snapshot(mappedBytes: number, allocatedBytes: number): AllocatorStats {
    return {
      mappedBytes,
      peakMappedBytes: Math.max(this.peakMappedBytes, mappedBytes),
      liveAllocations: this.liveAllocations,
      liveBytes: this.liveBytes,
      peakLiveBytes: this.peakLiveBytes,
      allocatedBytes,
      totalAllocations: this.totalAllocations,
      totalFrees: this.totalFrees,
    };
  }
}
