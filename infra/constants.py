"""Names, paths and sizes of the deployed Earshot, and what each function may touch: one place to look them up.

Stage differences (memory, retention, throttling, removal policy) are not here: they are arguments, see
``infra/config.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# Sources.
FUNCTIONS_DIR = REPO_ROOT / "functions"  # functions/<name>/handler.py, one Lambda each
CORE_PACKAGE_DIR = REPO_ROOT / "layers" / "core" / "python" / "earshot"
CATALOGS_DIR = CORE_PACKAGE_DIR / "catalogs"
FFPROBE_BINARY = REPO_ROOT / "layers" / "ffprobe" / "bin" / "ffprobe"
PYPROJECT = REPO_ROOT / "pyproject.toml"

# Built layer contents (``make layers``): each directory is a layer's root, mounted at /opt.
BUILD_LAYERS_DIR = REPO_ROOT / "build" / "layers"
CORE_LAYER_DIR = BUILD_LAYERS_DIR / "core"  # python/earshot, python/<its light dependencies>
AUDIO_LAYER_DIR = BUILD_LAYERS_DIR / "audio"  # python/av, python/numpy, python/pocketsphinx (+ their .libs)
FFPROBE_LAYER_DIR = BUILD_LAYERS_DIR / "ffprobe"  # bin/ffprobe.gz + bin/ffprobe.sha256 (earshot.ffprobe_binary)

# Where the layers put things inside the function (see earshot.config for the ffprobe path).
LAYER_PYTHON_DIR = "/opt/python"
LAYER_CATALOGS_DIR = f"{LAYER_PYTHON_DIR}/earshot/catalogs"

# The layer build: wheels for the Lambda runtime, fetched for its platform (no Docker).
# Lambda's python3.13 runs on Amazon Linux 2023 (glibc 2.34), so manylinux_2_28 wheels load there too;
# av 18 and numpy 2.4 publish x86_64 wheels only for manylinux_2_28 (numpy: 2_27), not manylinux2014.
LAYER_PYTHON_VERSION = "3.13"
LAYER_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
# Installed with --no-deps, as `make setup` does (its sounddevice dependency is for microphones).
# Keep in step with the Makefile's setup target.
POCKETSPHINX_REQUIREMENT = "pocketsphinx==5.1.1"
# Lambda's limit on a function's unzipped code plus all its layers.
LAMBDA_UNZIPPED_LIMIT_BYTES = 262_144_000

# Layers. Every function gets ``core``: earshot and its light dependencies (pydantic, Powertools, httpx, ...).
# Only the functions that decode or meter audio also get ``audio`` (the pyproject dependencies below, plus
# pocketsphinx) and ``ffprobe``: together they are most of the 250 MB a function may weigh, and loading them
# would only slow the other functions' cold starts.
CORE_LAYER = "core"
AUDIO_LAYER = "audio"
FFPROBE_LAYER = "ffprobe"
AUDIO_LAYER_REQUIREMENTS = ("av", "numpy")  # names of pyproject.toml dependencies; the rest go to core
AUDIO_LAYER_MODULES = ("av", "numpy", "pocketsphinx")  # what the audio layer puts on sys.path

# Naming.
STACK_PREFIX = "Earshot"  # stack "Earshot-<stage>"
RESOURCE_PREFIX = "earshot"  # function "earshot-<stage>-<name>"
DEFAULT_STAGE = "dev"
SERVICE_NAME = "earshot"  # POWERTOOLS_SERVICE_NAME; the same as earshot.observability.SERVICE
METRICS_NAMESPACE = "Earshot"  # POWERTOOLS_METRICS_NAMESPACE; the same as earshot.observability

# Functions.
HANDLER = "handler.lambda_handler"
AUTHORIZER_FUNCTION = "authorizer"
API_TIMEOUT_SEC = 29  # API Gateway's HTTP API integration timeout is 30 s and cannot be raised
AUTHORIZER_TIMEOUT_SEC = 10  # API Gateway waits at most 10 s for a Lambda authorizer
# The deployed inline upload limit: Lambda's 6 MB synchronous payload holds a base64 multipart body.
DEPLOYED_MAX_INLINE_BYTES = 4_400_000

# API.
AUTHORIZATION_IDENTITY_SOURCE = "$request.header.Authorization"
AUTHORIZER_CACHE_TTL_SEC = 60  # a revoked key stops working within a minute (see earshot.api.authorizer)

# Storage.
INBOX_PREFIX = "inbox/"  # presigned uploads land here and expire
ABORT_INCOMPLETE_MULTIPART_DAYS = 1

# Which functions handle audio. Every function must be in exactly one of the two sets: the functions construct and
# `make layers` refuse a function that is in neither (tests/infra cross-checks them against the manifest).
AUDIO_FUNCTIONS = frozenset(
    {
        "transcriptions",  # meters (ffprobe), decodes (PyAV) and transcribes (pocketsphinx)
        "understand",  # meters and analyses (PyAV, numpy)
        "extract",
        "understanding",  # takes audio like the routes above (a task, run by the workflow or inline)
        "workflow",  # the async steps: meter, run the engine
        "ingest",  # a finished upload (S3 event): plans its task with the engine's model, then starts it
    }
)
LIGHT_FUNCTIONS = frozenset(
    {
        "authorizer",
        "account",
        "models",
        "openapi",
        "tasks",  # reads and streams task records; never touches the audio
        "uploads",  # presigns an S3 POST; the audio goes straight to S3
    }
)
FUNCTION_LAYERS = {
    **dict.fromkeys(LIGHT_FUNCTIONS, (CORE_LAYER,)),
    **dict.fromkeys(AUDIO_FUNCTIONS, (CORE_LAYER, AUDIO_LAYER, FFPROBE_LAYER)),
}


def layers_for(function: str) -> tuple[str, ...]:
    """The layers ``function`` gets, by name, in mount order."""
    try:
        return FUNCTION_LAYERS[function]
    except KeyError:
        raise KeyError(
            f"function {function!r} is in neither infra.constants.AUDIO_FUNCTIONS nor LIGHT_FUNCTIONS: decide "
            "whether it decodes or meters audio (then it needs the audio and ffprobe layers) first"
        ) from None


# Monitoring.
ALARM_PERIOD_MIN = 5
API_5XX_RATE_THRESHOLD_PCT = 5.0
PROVIDER_ERRORS_METRIC = "ProviderErrors"  # emitted by the services with Powertools' service dimension
PROVIDER_ERRORS_THRESHOLD = 5  # per alarm period


# What each function may touch. Least privilege: a function gets only the DynamoDB actions its code performs on
# the tables (and indexes) it uses, and read access to the provider credentials the stage's catalog references
# only if it calls models. Every function in the route manifest must have an entry here; the functions construct
# refuses to build one without it, and tests/infra cross-checks the table against the manifest.
GET_ITEM = "dynamodb:GetItem"
PUT_ITEM = "dynamodb:PutItem"
UPDATE_ITEM = "dynamodb:UpdateItem"
QUERY = "dynamodb:Query"
# What earshot.adapters.credentials calls (Powertools Parameters get_secret / get_parameter). SecureString
# parameters under the AWS managed aws/ssm key need no KMS grant.
SECRET_READ_ACTIONS = ("secretsmanager:GetSecretValue",)
SSM_PARAMETER_READ_ACTIONS = ("ssm:GetParameter",)


@dataclass(frozen=True)
class TableAccess:
    """What a function does to one table: ``actions`` on the table, ``Query`` on the ``queried_indexes``."""

    table: str  # TableSpec.logical
    actions: tuple[str, ...] = ()
    queried_indexes: tuple[str, ...] = ()


@dataclass(frozen=True)
class FunctionAccess:
    tables: tuple[TableAccess, ...] = ()
    provider_credentials: bool = False  # reads the upstream API keys the catalog references


# Every authenticated route counts its key's requests: an atomic ADD on the window's counter (UpdateItem).
COUNT_REQUESTS = TableAccess("rate_limits", actions=(UPDATE_ITEM,))
# A metered request reads the balance, debits it with its ledger entry in one transaction (a conditional Update
# and a conditional Put), looks up an earlier entry of a retried request, and refunds the same way on failure.
CHARGE = (
    TableAccess("accounts", actions=(GET_ITEM, UPDATE_ITEM)),
    TableAccess("ledger", actions=(GET_ITEM, PUT_ITEM)),
)
_METERED = FunctionAccess(tables=(*CHARGE, COUNT_REQUESTS), provider_credentials=True)

FUNCTION_ACCESS: dict[str, FunctionAccess] = {
    # Looks up the key by the SHA-256 of the bearer token.
    "authorizer": FunctionAccess(tables=(TableAccess("api_keys", actions=(GET_ITEM,)),)),
    "transcriptions": _METERED,
    "understand": _METERED,
    "extract": _METERED,
    # Balance (GetItem on accounts) and usage (Query on the ledger's by_account index).
    "account": FunctionAccess(
        tables=(
            TableAccess("accounts", actions=(GET_ITEM,)),
            TableAccess("ledger", queried_indexes=("by_account",)),
            COUNT_REQUESTS,
        )
    ),
    # The catalog ships in the core layer: nothing to read but the request counter.
    "models": FunctionAccess(tables=(COUNT_REQUESTS,)),
    # Public and generated from the manifest: no data at all.
    "openapi": FunctionAccess(),
}
