"""Spec files, keys and units, user errors, and the fitted-parameter files.

Everything a user writes enters here and leaves as SI-unit PyTrees; every mistake becomes a
one-line :class:`SpecError` naming the file, the key and what was expected.
"""

from dse._lazy import lazy_exports

from ._errors import SpecError as SpecError
from ._errors import suggest as suggest
from ._files import CATALOG as CATALOG
from ._files import MODEL_DIR as MODEL_DIR
from ._files import load_yaml as load_yaml
from ._files import read_input as read_input
from ._files import read_mapping as read_mapping
from ._files import resolve as resolve
from ._files import shipped_folders as shipped_folders
from ._fitted import FITTED_DIR as FITTED_DIR
from ._fitted import check_fitted_writable as check_fitted_writable
from ._fitted import fitted_chip as fitted_chip
from ._fitted import fitted_frameworks as fitted_frameworks
from ._fitted import fitted_software as fitted_software
from ._fitted import fitted_source as fitted_source
from ._fitted import has_own_fit as has_own_fit
from ._fitted import read_fitted as read_fitted
from ._fitted import software_from_mapping as software_from_mapping
from ._fitted import software_to_mapping as software_to_mapping
from ._fitted import write_fitted as write_fitted
from ._hardware import HardwareEntry as HardwareEntry
from ._hardware import chip_from as chip_from
from ._hardware import floorplan_of as floorplan_of
from ._hardware import gemm_precision as gemm_precision
from ._hardware import hardware_ids as hardware_ids
from ._hardware import hardware_keys as hardware_keys
from ._hardware import knob_of_hardware_key as knob_of_hardware_key
from ._hardware import load_hardware as load_hardware
from ._hardware import power_inputs as power_inputs
from ._hardware import power_shares as power_shares
from ._hardware import silicon_of as silicon_of
from ._hardware import transferred_power as transferred_power
from ._keys import KeyInfo as KeyInfo
from ._keys import check as check
from ._keys import described as described
from ._keys import keys_of as keys_of
from ._model import MODEL_KEYS as MODEL_KEYS
from ._model import ModelEntry as ModelEntry
from ._model import load_model as load_model
from ._model import model_ids as model_ids
from ._outputs import MARK_ATTR as MARK_ATTR
from ._outputs import invocation as invocation
from ._outputs import make_parent as make_parent
from ._outputs import note_input as note_input
from ._outputs import ownership as ownership
from ._outputs import refuse_foreign as refuse_foreign
from ._outputs import remove_own as remove_own
from ._outputs import writing as writing
from ._platforms import PlatformEntry as PlatformEntry
from ._platforms import check_placement as check_placement
from ._platforms import hardware_network as hardware_network
from ._platforms import load_platform as load_platform
from ._platforms import network_of as network_of
from ._platforms import platform_ids as platform_ids
from ._units import UNITS as UNITS
from ._units import to_si as to_si
from ._use_cases import UseCase as UseCase
from ._use_cases import load_use_case as load_use_case
from ._use_cases import use_cases as use_cases
from ._userfit import UserFit as UserFit
from ._userfit import fits_in_effect as fits_in_effect
from ._userfit import named_fit_path as named_fit_path
from ._userfit import named_fits as named_fits
from ._userfit import read_fit as read_fit
from ._userfit import spec_digest as spec_digest
from ._userfit import write_fit as write_fit

# Writing a dataset imports zarr: loaded on first use (a query that prints a table never does).
__getattr__ = lazy_exports(
    __name__, {"checksummed": "_datasets", "consolidate": "_datasets", "write_dataset": "_datasets"}
)
