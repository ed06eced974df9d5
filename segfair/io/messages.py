"""The fixed texts of the errors: the reason (``MSG_*``) and the fix (``FIX_*``) of each.

Format strings; :class:`~segfair.errors.InputError` adds the case and the file. Tests and
callers match them exactly."""

from __future__ import annotations

__all__ = [
    "FIX_4D",
    "FIX_AFFINE_SPACING",
    "FIX_BAD_AFFINE",
    "FIX_BAD_LABELS",
    "FIX_BAD_SPACING",
    "FIX_BAD_THRESHOLD",
    "FIX_CANNOT_OPEN",
    "FIX_COLOUR_IMAGE",
    "FIX_CROPPED",
    "FIX_DTYPE",
    "FIX_EMPTY_SHAPE",
    "FIX_GZIP_NAMED_NII",
    "FIX_LABELS_NOT_FOUND",
    "FIX_MHD_DATA_FILE",
    "FIX_MISSING",
    "FIX_MISSING_EXTRA",
    "FIX_NIFTI_SPACING",
    "FIX_NONFINITE",
    "FIX_NOT_A_FILE",
    "FIX_NOT_GZIP_BUT_NIFTI",
    "FIX_NOT_SEG",
    "FIX_NPY_VERSION",
    "FIX_NPZ_KEYS",
    "FIX_NPZ_NO_MASK",
    "FIX_PICKLED",
    "FIX_PROBABILITY",
    "FIX_PROBABILITY_STRUCTURES",
    "FIX_REORIENT",
    "FIX_RESAMPLE",
    "FIX_SAVE_DTYPE",
    "FIX_SAVE_FORMAT",
    "FIX_SAVE_IMAGE_GEOMETRY",
    "FIX_SAVE_NDIM",
    "FIX_SAVE_NPY_GEOMETRY",
    "FIX_SEGMENTS_NOT_FOUND",
    "FIX_SEG_GEOMETRY",
    "FIX_SEG_OVERLAP",
    "FIX_SPACING_LENGTH",
    "FIX_STRUCTURE_LABELS_NOT_FOUND",
    "FIX_SUFFIX",
    "FIX_TOO_FEW_DIMS",
    "FIX_TOO_LARGE",
    "FIX_UNKNOWN_SEGMENTS",
    "FIX_UNREADABLE",
    "MSG_4D",
    "MSG_AFFINE_SPACING",
    "MSG_BAD_AFFINE",
    "MSG_BAD_LABELS",
    "MSG_BAD_SPACING",
    "MSG_BAD_THRESHOLD",
    "MSG_CANNOT_OPEN",
    "MSG_COLOUR_IMAGE",
    "MSG_DTYPE",
    "MSG_EMPTY_SHAPE",
    "MSG_GEOMETRY",
    "MSG_GZIP_NAMED_NII",
    "MSG_LABELS_NOT_FOUND",
    "MSG_MHD_DATA_FILE",
    "MSG_MISSING",
    "MSG_MISSING_EXTRA",
    "MSG_NIFTI_SPACING",
    "MSG_NONFINITE",
    "MSG_NOT_A_FILE",
    "MSG_NOT_GZIP",
    "MSG_NOT_REORIENTABLE",
    "MSG_NOT_SEG",
    "MSG_NPY_VERSION",
    "MSG_NPZ_KEYS",
    "MSG_NPZ_NO_MASK",
    "MSG_PICKLED",
    "MSG_PROBABILITY",
    "MSG_SAVE_AFFINE_SPACING",
    "MSG_SAVE_DTYPE",
    "MSG_SAVE_FORMAT",
    "MSG_SAVE_IMAGE_GEOMETRY",
    "MSG_SAVE_NDIM",
    "MSG_SAVE_NPY_GEOMETRY",
    "MSG_SEGMENTS_NOT_FOUND",
    "MSG_SEG_GEOMETRY",
    "MSG_SEG_OVERLAP",
    "MSG_SPACING_LENGTH",
    "MSG_SUFFIX",
    "MSG_TOO_FEW_DIMS",
    "MSG_TOO_LARGE",
    "MSG_UNKNOWN_SEGMENTS",
    "MSG_UNREADABLE",
]

MSG_MISSING = "file not found"
FIX_MISSING = "check that the file exists and that the path template and case id point to it"
MSG_NOT_A_FILE = "is not a regular file"
FIX_NOT_A_FILE = "point the mask source at a file, not a directory"
MSG_SUFFIX = "unsupported file type {suffix!r}; segfair reads {supported}"
FIX_SUFFIX = (
    "convert the mask to NIfTI (.nii.gz) or NumPy (.npy / .npz), or to one of the formats of "
    "the optional extras (docs/formats.md)"
)
MSG_CANNOT_OPEN = "cannot be opened ({reason})"
FIX_CANNOT_OPEN = (
    "give the user that runs segfair read access to the file (and its folders), e.g. chmod a+r"
)
MSG_UNREADABLE = "cannot read this {kind} file; it is truncated or corrupt ({reason})"
FIX_UNREADABLE = (
    "re-export or re-copy the file (an interrupted copy or download truncates files); "
    "it must open with {check}"
)
MSG_NOT_GZIP = "the file is named .nii.gz but is not gzip-compressed"
FIX_NOT_GZIP_BUT_NIFTI = "it is an uncompressed NIfTI file: rename it to .nii (or gzip it)"
MSG_GZIP_NAMED_NII = "the file is named .nii but is gzip-compressed"
FIX_GZIP_NAMED_NII = "rename it to .nii.gz"
MSG_NPY_VERSION = "uses .npy format version {version}, which segfair does not read"
FIX_NPY_VERSION = "re-save the mask with np.save"
MSG_PICKLED = "holds a pickled object array (dtype {dtype}); segfair never unpickles input files"
FIX_PICKLED = "save the mask as a numeric array, e.g. np.save(path, mask.astype(np.uint8))"
MSG_DTYPE = "has data type {dtype}, which cannot hold a mask"
FIX_DTYPE = "store the mask as integer labels (uint8) or booleans"
MSG_TOO_LARGE = (
    "the header promises {voxels:,} voxels (shape {shape}), more than the limit of {limit:,}; "
    "no voxel data was read"
)
FIX_TOO_LARGE = (
    "if the file is genuine, raise `max_voxels` in the segfair config (or pass max_voxels= to "
    "load_mask); otherwise the header is corrupt and the file must be re-exported"
)
MSG_TOO_FEW_DIMS = "has {ndim} dimension(s) (shape {shape}); a mask must be 2-D or 3-D"
FIX_TOO_FEW_DIMS = "save the mask with its image grid shape (2-D or 3-D)"
MSG_4D = (
    "{ndim}-D mask with {volumes} volumes (shape {shape}); segfair scores one 3-D mask per case"
)
FIX_4D = "split the volumes or select one, so that each case has one 3-D mask"
MSG_EMPTY_SHAPE = "has shape {shape} with a zero-length axis; there are no voxels to score"
FIX_EMPTY_SHAPE = "re-export the mask on its image grid"
MSG_BAD_SPACING = "voxel spacing {spacing} from {source} is not finite and positive"
FIX_BAD_SPACING = {
    "the NIfTI header": "fix the header's pixdim (e.g. nibabel: img.header.set_zooms(...)) "
    "or re-export the mask from its image",
    "the `spacing` array": "store one positive spacing per axis in the `spacing` array",
    "the `affine` array": "store a non-degenerate 4x4 `affine` (voxel axes of non-zero length)",
    "the spacing argument": "pass one positive, finite spacing (mm) per array axis",
    "the image header": "fix the spacing of the image (e.g. SimpleITK: image.SetSpacing(...)) or "
    "re-export the mask from its image",
    "the DICOM-SEG pixel measures": "re-export the segmentation with the pixel spacing and "
    "slice spacing of its source series",
    "the PNG pHYs chunk": "write a positive pHYs (pixels per metre), or none and declare "
    "`spacing` in the configuration",
    "the TIFF resolution tags": "write positive XResolution/YResolution, or none and declare "
    "`spacing` in the configuration",
}
MSG_SPACING_LENGTH = "spacing {spacing} from {source} has {n} value(s) but the mask is {ndim}-D"
FIX_SPACING_LENGTH = "give exactly one spacing (mm) per array axis"
MSG_BAD_AFFINE = "the affine from {source} is not a finite 4x4 matrix with last row [0, 0, 0, 1]"
FIX_BAD_AFFINE = "store a valid 4x4 voxel-to-world affine (mm), as save_mask does"
MSG_AFFINE_SPACING = (
    "the `affine` array implies voxel sizes {implied} mm but the `spacing` array says {spacing}"
)
FIX_AFFINE_SPACING = (
    "store consistent geometry: spacing = column lengths of affine[:3, :ndim] (save_mask does this)"
)
MSG_NIFTI_SPACING = (
    "the header contradicts itself: its pixdim says voxels of {spacing} mm, its {form} places "
    "them {implied} mm apart; distances would depend on which one a tool reads"
)
FIX_NIFTI_SPACING = (
    "re-save the mask with the image's geometry, e.g. nibabel.Nifti1Image(mask, image.affine, "
    "image.header), so that pixdim and the sform/qform agree"
)
MSG_SAVE_AFFINE_SPACING = (
    "the affine argument implies voxel sizes {implied} mm but the spacing argument says {spacing}"
)
MSG_NPZ_KEYS = "holds arrays {keys} and none is named 'mask'"
FIX_NPZ_KEYS = "name the mask array 'mask', e.g. np.savez(path, mask=mask, spacing=spacing)"
MSG_NPZ_NO_MASK = "holds no mask array (arrays: {keys})"
FIX_NPZ_NO_MASK = "store the mask under the key 'mask'"
MSG_NONFINITE = "{nan:,} voxel(s) are NaN and {inf:,} infinite; a mask must hold finite values"
FIX_NONFINITE = (
    "re-export the mask; NaN usually means that the model or a resampling step failed on this case"
)
MSG_PROBABILITY = (
    "holds non-integer values from {min:.6g} to {max:.6g}: it looks like a probability map "
    "(or logits), not a mask"
)
FIX_PROBABILITY = (
    "set `threshold` (e.g. 0.5) for this mask source to binarise it as value >= threshold, "
    "or export a label mask"
)
FIX_PROBABILITY_STRUCTURES = (
    "[structures] select labels from integer label maps: export a label mask, or remove "
    "[structures] and set `threshold` to read this probability map as one structure"
)
FIX_STRUCTURE_LABELS_NOT_FOUND = (
    "declare the structures by the labels the masks hold, e.g. {suggestion}, under [structures]"
)
MSG_LABELS_NOT_FOUND = (
    "none of the selected labels {selected} occur in the mask; it holds labels {found}"
)
FIX_LABELS_NOT_FOUND = "select the foreground with `labels = {suggestion}` for this mask source"
MSG_BAD_LABELS = "labels must be one integer or a non-empty collection of integers, not {labels!r}"
FIX_BAD_LABELS = "set `labels` to e.g. 1 or [1, 2]"
MSG_BAD_THRESHOLD = "threshold must be a finite number, not {threshold!r}"
FIX_BAD_THRESHOLD = "set `threshold` to e.g. 0.5"
MSG_GEOMETRY = (
    "prediction and reference are not on the same voxel grid ({difference}): "
    "prediction {pred}; reference {ref}"
)
FIX_REORIENT = (
    "they differ only in axis order and/or flips: set `reorient = true` in the segfair config to "
    "reorder the prediction onto the reference grid (exact, no interpolation)"
)
FIX_RESAMPLE = (
    "resample the prediction onto the reference grid with nearest-neighbour interpolation before "
    "scoring (e.g. nibabel.processing.resample_from_to(pred_img, ref_img, order=0)); "
    "segfair does not resample"
)
MSG_NOT_REORIENTABLE = (
    "cannot bring the mask onto the target grid by reordering or flipping axes ({difference}); "
    "segfair does not resample: mask {mask}; target {target}"
)
MSG_SAVE_NDIM = "save_mask writes 2-D or 3-D masks, not an array of shape {shape}"
FIX_SAVE_NDIM = "pass one 2-D or 3-D mask per file"
MSG_SAVE_DTYPE = "a mask is written as uint8, which cannot hold {what}"
FIX_SAVE_DTYPE = "pass a boolean mask or integer labels in 0..255"
MSG_SAVE_NPY_GEOMETRY = "a .npy file stores no geometry, so the given affine/spacing would be lost"
FIX_SAVE_NPY_GEOMETRY = (
    "save as .npz or .nii.gz, or save without geometry and pass spacing= to load_mask"
)
MSG_MISSING_EXTRA = (
    "reading {format} files needs the optional package {package}, which is not installed"
)
FIX_MISSING_EXTRA = "install it with: pip install 'segfair[{extra}]'"
MSG_MHD_DATA_FILE = "its ElementDataFile {value!r} is not one data file next to it (or LOCAL)"
FIX_MHD_DATA_FILE = (
    "re-save the image as one .mha file (or a .mhd with one .raw/.zraw data file), e.g. "
    "SimpleITK.WriteImage(image, 'mask.mha')"
)
MSG_COLOUR_IMAGE = "is a {mode} colour image ({bands} channels), not a mask"
FIX_COLOUR_IMAGE = (
    "save the mask as a single-channel image: 8- or 16-bit greyscale labels, or 0/255 binary "
    "(e.g. PIL: image.convert('L'))"
)
MSG_NOT_SEG = "is a DICOM {what}, not a Segmentation (SEG) object"
FIX_NOT_SEG = (
    "point the mask source at the DICOM-SEG file of the case (Modality SEG, SOP class "
    "1.2.840.10008.5.1.4.1.1.66.4), not at an image of the series"
)
MSG_SEG_GEOMETRY = "its frames do not form a regular 3-D grid: {reason}"
FIX_SEG_GEOMETRY = (
    "re-export the segmentation on the grid of its source series (one orientation and pixel "
    "spacing, equally spaced planes)"
)
MSG_SEG_OVERLAP = (
    "segments {first} and {second} overlap in {voxels:,} voxel(s): one label map cannot hold both"
)
FIX_SEG_OVERLAP = (
    "select segments with `labels` (load_mask unites the selected segments exactly, overlaps "
    "included), or re-export the segmentation without overlapping segments"
)
MSG_SEGMENTS_NOT_FOUND = "none of the selected labels {selected} is a segment of this file"
FIX_SEGMENTS_NOT_FOUND = (
    "select segments by number with `labels`; this file's segments are {segments}"
)
MSG_UNKNOWN_SEGMENTS = "its segment metadata cannot be read: {reason}"
FIX_UNKNOWN_SEGMENTS = (
    "re-save the segmentation with 3D Slicer (File > Save, .seg.nrrd), which writes a Segment<N>_"
    "LabelValue and Segment<N>_Layer for every segment; or export a plain label map (.nrrd)"
)
MSG_SAVE_FORMAT = "save_mask does not write {suffix} files"
FIX_SAVE_FORMAT = (
    "save as .nii.gz, .nii, .npz, .npy, .mha, .nrrd, .png or .tif (DICOM-SEG, .mhd and .seg.nrrd "
    "are read, not written)"
)
MSG_SAVE_IMAGE_GEOMETRY = "a {kind} file cannot store this geometry"
FIX_SAVE_IMAGE_GEOMETRY = (
    "an image file stores a pixel size only (a PNG: whole pixels per metre, i.e. 1000 / spacing "
    "a whole number; a PNG is 2-D): save without an affine, or save as .nii.gz / .mha"
)
FIX_CROPPED = (
    "one grid is a crop of the other (same spacing and axes, shifted by whole voxels): a "
    "DICOM-SEG that omits its empty frames, or a segmentation saved cropped to its segments, "
    "spans only part of its image. segfair pads a cropped prediction or automated ruler onto the "
    "trusted ruler's grid (exact: what was cropped is background), but the trusted ruler must "
    "span the whole grid: export it on the image's full grid (highdicom: "
    "omit_empty_frames=False; 3D Slicer: save without cropping to the minimum extent)"
)
