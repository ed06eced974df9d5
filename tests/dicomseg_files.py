"""Small DICOM Segmentation objects written with pydicom, for the format tests (no network data).

The volume convention is segfair's: ``mask[column, row, plane]``; frame ``k`` of a segment is
``mask[:, :, k].T`` (rows × columns).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import pack_bits
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
CT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.2"


def _base(sop_class: str, modality: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientID = "P1"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    return ds


def _describe_segments(ds: Dataset, numbers: Sequence[int], names: Mapping[int, str]) -> None:
    ds.SegmentSequence = DicomSequence()
    for number in numbers:
        item = Dataset()
        item.SegmentNumber = number
        item.SegmentLabel = names.get(number, f"segment {number}")
        item.SegmentAlgorithmType = "MANUAL"
        ds.SegmentSequence.append(item)


def _shared_groups(ds: Dataset, spacing: Sequence[float], orientation: Sequence[float]) -> None:
    """The orientation and pixel measures every frame shares (``spacing``: column, row, plane)."""
    shared = Dataset()
    plane_orientation = Dataset()
    plane_orientation.ImageOrientationPatient = [float(v) for v in orientation]
    measures = Dataset()
    measures.PixelSpacing = [float(spacing[1]), float(spacing[0])]  # row, column spacing
    measures.SliceThickness = float(spacing[2])
    measures.SpacingBetweenSlices = float(spacing[2])
    shared.PlaneOrientationSequence = DicomSequence([plane_orientation])
    shared.PixelMeasuresSequence = DicomSequence([measures])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])


def write_seg(
    path: Path,
    segments: Mapping[int, np.ndarray],
    *,
    spacing: Sequence[float] = (0.5, 0.75, 2.0),
    origin: Sequence[float] = (-10.0, 20.0, 5.0),
    orientation: Sequence[float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    fractional: bool = False,
    omit_empty: bool = True,
    names: Mapping[int, str] | None = None,
) -> Path:
    """Write ``segments`` (number → mask[column, row, plane], bool; or uint8 0..255 fractional)
    as a DICOM-SEG; ``spacing`` is (column, row, plane) spacing in mm, ``origin`` (LPS) the
    position of plane 0, whose normal is the row direction × the column direction."""
    first = next(iter(segments.values()))
    columns, rows, planes = first.shape
    row_dir = np.asarray(orientation[:3], dtype=float)
    col_dir = np.asarray(orientation[3:], dtype=float)
    normal = np.cross(row_dir, col_dir)
    ds = _base(SEG_SOP_CLASS, "SEG")
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelRepresentation = 0
    ds.SegmentationType = "FRACTIONAL" if fractional else "BINARY"
    if fractional:
        ds.SegmentationFractionalType = "PROBABILITY"
        ds.MaximumFractionalValue = 255
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
    else:
        ds.BitsAllocated = ds.BitsStored = 1
        ds.HighBit = 0
    _describe_segments(ds, list(segments), names or {})
    _shared_groups(ds, spacing, orientation)
    per_frame = DicomSequence()
    frames = []
    for number, mask in segments.items():
        for k in range(planes):
            frame = np.asarray(mask[:, :, k]).T
            if omit_empty and not frame.any():
                continue
            groups = Dataset()
            position = Dataset()
            position.ImagePositionPatient = [
                float(v) for v in np.asarray(origin, dtype=float) + k * spacing[2] * normal
            ]
            ident = Dataset()
            ident.ReferencedSegmentNumber = number
            groups.PlanePositionSequence = DicomSequence([position])
            groups.SegmentIdentificationSequence = DicomSequence([ident])
            per_frame.append(groups)
            frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.NumberOfFrames = len(frames)
    stack = np.stack(frames).astype(np.uint8)
    ds.PixelData = stack.tobytes() if fractional else pack_bits(stack != 0)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_labelmap_seg(
    path: Path, labels: np.ndarray, *, spacing: Sequence[float] = (0.5, 0.75, 2.0)
) -> Path:
    """A LABELMAP SEG (DICOM 2024, Supplement 243): one frame per plane whose pixel values are
    segment numbers; ``labels[column, row, plane]``."""
    columns, rows, planes = labels.shape
    numbers = [int(v) for v in np.unique(labels) if v]
    ds = _base(SEG_SOP_CLASS, "SEG")
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelRepresentation = 0
    ds.SegmentationType = "LABELMAP"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    _describe_segments(ds, numbers, {})
    _shared_groups(ds, spacing, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0))
    ds.PerFrameFunctionalGroupsSequence = DicomSequence()
    for k in range(planes):
        groups = Dataset()
        position = Dataset()
        position.ImagePositionPatient = [0.0, 0.0, float(k * spacing[2])]
        groups.PlanePositionSequence = DicomSequence([position])
        ds.PerFrameFunctionalGroupsSequence.append(groups)
    ds.NumberOfFrames = planes
    ds.PixelData = np.stack([labels[:, :, k].T for k in range(planes)]).astype(np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_ct_slice(path: Path) -> Path:
    """A one-slice CT image: a DICOM file that is not a SEG."""
    ds = _base(CT_SOP_CLASS, "CT")
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelRepresentation = 0
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelData = np.zeros((4, 4), np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def seg_affine(spacing: Sequence[float], origin: Sequence[float]) -> np.ndarray:
    """The RAS affine of an axis-aligned SEG of ``write_seg``, computed by hand: DICOM's LPS
    x and y negated."""
    return np.array(
        [
            [-spacing[0], 0.0, 0.0, -origin[0]],
            [0.0, -spacing[1], 0.0, -origin[1]],
            [0.0, 0.0, spacing[2], origin[2]],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
