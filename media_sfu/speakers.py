"""Active speaker detection from the RTP audio-level header extension (RFC 6464).

Values are dBov attenuation, 0 = loudest, 127 = silence. A participant is speaking when at least
``min_fraction`` of its audio packets in the observation window were louder than
``active_dbov`` (LiveKit's defaults: 35 dBov, 40 %).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AudioLevelMeter:
    active_dbov: int = 35
    min_fraction: float = 0.4
    _total: int = 0
    _loud: int = 0
    _linear_sum: float = 0.0

    def add(self, dbov: int) -> None:
        self._total += 1
        if dbov <= self.active_dbov:
            self._loud += 1
            self._linear_sum += 10 ** (-dbov / 20)

    def sample(self) -> tuple[bool, float]:
        """(speaking, level 0..1) over the packets since the last call; resets the window."""
        total, loud, lin = self._total, self._loud, self._linear_sum
        self._total = self._loud = 0
        self._linear_sum = 0.0
        if total == 0 or loud / total < self.min_fraction:
            return False, 0.0
        return True, min(1.0, lin / loud)
