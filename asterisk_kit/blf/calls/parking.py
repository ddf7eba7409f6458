"""Parked calls (res_parking): lot, space, who is parked, since when."""
from __future__ import annotations

from typing import Dict, Optional


class Parking:
    def __init__(self) -> None:
        self.spaces: Dict[str, Dict[str, object]] = {}     # "lot:space" -> parked call

    def parked(self, ev: Dict[str, str], now: float) -> str:
        """ParkedCall (event or ParkedCalls row): since = now - ParkingDuration."""
        ref = f"{ev.get('Parkinglot', '')}:{ev.get('ParkingSpace', '')}"
        timeout = _int(ev.get("ParkingTimeout"))
        self.spaces[ref] = {"lot": ev.get("Parkinglot", ""), "space": ev.get("ParkingSpace", ""),
                            "number": ev.get("ParkeeCallerIDNum", ""),
                            "name": _known(ev.get("ParkeeCallerIDName", "")),
                            "since": now - _int(ev.get("ParkingDuration")),
                            "timeout_at": now + timeout if timeout else None}
        return ref

    def gone(self, ev: Dict[str, str]) -> Optional[str]:
        """UnParkedCall / ParkedCallGiveUp / ParkedCallTimeOut."""
        ref = f"{ev.get('Parkinglot', '')}:{ev.get('ParkingSpace', '')}"
        return ref if self.spaces.pop(ref, None) is not None else None


def _int(v: Optional[str]) -> int:
    try:
        return int(v or 0)
    except ValueError:
        return 0


def _known(v: str) -> str:
    return "" if v == "<unknown>" else v
