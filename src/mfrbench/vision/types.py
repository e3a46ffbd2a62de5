"""Plain data passed between vision stages. Coordinates are image pixels (x, y), RGB images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Face:
    """One detected face.

    box: (x1, y1, x2, y2) floats in the pixel coordinates of the image given to the detector.
    score: detector confidence (MTCNN probability, dlib HOG score, 1.0 for Haar/none).
    landmarks5: (5, 2) float array (eyes, nose, mouth corners) when the detector gives them.
    detector: name of the detector that found it (``mtcnn``, ``dlib``, ``haar``, ``none``).
    """

    box: tuple[float, float, float, float]
    score: float
    detector: str
    landmarks5: np.ndarray | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)
