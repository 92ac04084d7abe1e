/**
 * RSSI hysteresis for walk-up (passive) unlock.
 *
 * Guarantees: a link becomes "near" only when RSSI reaches `enterRssi` and
 * stays near until RSSI drops below `exitRssi` (exit ≤ enter), so a phone at
 * the threshold does not flap. Unknown RSSI is never near. Pure and per link.
 */

export interface ProximityThresholds {
  readonly enterRssi: number;
  readonly exitRssi: number;
}

export class ProximityTracker {
  private isNear: boolean;
  private last: number | undefined;

  /** `startNear`: the link is known to be near already (walk-away watches a phone that just unlocked). */
  constructor(
    private readonly thresholds: ProximityThresholds,
    startNear = false,
  ) {
    this.isNear = startNear;
  }

  /** Feed one RSSI sample (dBm) or undefined when the radio has none. */
  observe(rssi: number | undefined): boolean {
    this.last = rssi;
    if (rssi === undefined || !Number.isFinite(rssi) || rssi >= 127) {
      // 127 is the HCI "RSSI not available" value.
      this.isNear = false;
    } else if (this.isNear) {
      this.isNear = rssi >= this.thresholds.exitRssi;
    } else {
      this.isNear = rssi >= this.thresholds.enterRssi;
    }
    return this.isNear;
  }

  get near(): boolean {
    return this.isNear;
  }

  get rssi(): number | undefined {
    return this.last;
  }
}
