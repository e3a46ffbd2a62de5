"""Computer-vision stages: decode, detect, landmarks, masks, ROI crops, augmentation."""
