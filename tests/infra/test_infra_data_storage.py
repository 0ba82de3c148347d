"""Tables follow the one layout; the bucket is private, TLS-only, encrypted and cleans up after itself."""

from __future__ import annotations

from typing import Any

from infra_synth import RETENTION_DAYS, Synthesized

from earshot.adapters.dynamo_layout import TABLES, TableSpec
from earshot.blob_layout import INBOX_PREFIX, TASKS_PREFIX, UPLOADS_PREFIX
from earshot.ports import TASK_TTL_SEC

TLS_ONLY = {"Bool": {"aws:SecureTransport": "false"}}  # the condition of a deny-plain-HTTP statement


def _table(synth: Synthesized, spec: TableSpec) -> dict[str, Any]:
    env = synth.resources[synth.function_logical_id("authorizer")]["Properties"]["Environment"]["Variables"]
    return synth.resources[env[spec.env_var]["Ref"]]


def _key_schema(partition: str, sort: str | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": partition, "KeyType": "HASH"}]
    if sort:
        schema.append({"AttributeName": sort, "KeyType": "RANGE"})
    return schema


def test_tables_follow_the_layout(synthesized: Synthesized) -> None:
    assert len(synthesized.of_type("AWS::DynamoDB::Table")) == len(TABLES)
    for spec in TABLES:
        props = _table(synthesized, spec)["Properties"]
        expected = spec.create_table_kwargs("unused")
        assert props["KeySchema"] == expected["KeySchema"]
        assert (
            sorted(props["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == expected["AttributeDefinitions"]
        )
        indexes = {index["IndexName"]: index for index in props.get("GlobalSecondaryIndexes", [])}
        assert set(indexes) == {index.name for index in spec.indexes}
        for index in spec.indexes:
            deployed = indexes[index.name]
            assert deployed["KeySchema"] == _key_schema(index.partition.name, index.sort.name if index.sort else None)
            assert deployed["Projection"] == {"ProjectionType": "ALL"}
        if spec.ttl_attribute:
            assert props["TimeToLiveSpecification"] == {"AttributeName": spec.ttl_attribute, "Enabled": True}
        else:
            assert "TimeToLiveSpecification" not in props


def test_tables_are_on_demand_encrypted_and_recoverable(synthesized: Synthesized) -> None:
    for spec in TABLES:
        props = _table(synthesized, spec)["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert props["SSESpecification"]["SSEEnabled"] is True


def _blob_bucket(synth: Synthesized) -> tuple[str, dict[str, Any]]:
    env = synth.resources[synth.function_logical_id("authorizer")]["Properties"]["Environment"]["Variables"]
    bucket_id = env["EARSHOT_BUCKET_NAME"]["Ref"]
    return bucket_id, synth.resources[bucket_id]["Properties"]


def test_buckets_block_public_access_encrypt_and_enforce_owner(synthesized: Synthesized) -> None:
    buckets = synthesized.of_type("AWS::S3::Bucket")
    assert len(buckets) == 2  # blobs, and its access logs
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_buckets_refuse_plain_http(synthesized: Synthesized) -> None:
    policies = synthesized.of_type("AWS::S3::BucketPolicy").values()
    protected = set()
    for policy in policies:
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement.get("Condition") == TLS_ONLY:
                protected.add(policy["Properties"]["Bucket"]["Ref"])
    assert protected == set(synthesized.of_type("AWS::S3::Bucket"))


def test_blob_bucket_is_versioned_logged_and_expires_uploads(synthesized: Synthesized) -> None:
    _, props = _blob_bucket(synthesized)
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert "DestinationBucketName" in props["LoggingConfiguration"]
    rules = {rule["Id"]: rule for rule in props["LifecycleConfiguration"]["Rules"]}
    inbox = rules["expire-inbox-uploads"]
    assert inbox["Prefix"] == INBOX_PREFIX
    assert inbox["ExpirationInDays"] == synthesized.config.inbox_expiry_days
    assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] > 0
    assert all(rule["Status"] == "Enabled" for rule in rules.values())


def test_upload_records_and_task_blobs_expire_after_what_reads_them(synthesized: Synthesized) -> None:
    _, props = _blob_bucket(synthesized)
    rules = {rule["Id"]: rule for rule in props["LifecycleConfiguration"]["Rules"]}
    records = rules["expire-upload-records"]
    assert records["Prefix"] == UPLOADS_PREFIX
    assert records["ExpirationInDays"] > synthesized.config.inbox_expiry_days  # the file goes first
    task_blobs = rules["expire-task-blobs"]
    assert task_blobs["Prefix"] == TASKS_PREFIX
    assert task_blobs["ExpirationInDays"] * 24 * 3600 > TASK_TTL_SEC  # the task record goes first


def test_bucket_prefixes_are_the_cores_key_layout() -> None:
    from earshot import blob_layout

    assert blob_layout.task_input_key("t").startswith(TASKS_PREFIX)
    assert blob_layout.task_result_key("t").startswith(TASKS_PREFIX)
    assert blob_layout.upload_record_key("file-1").startswith(UPLOADS_PREFIX)
    assert blob_layout.inbox_key("acct_1", "file-1", "a.wav").startswith(INBOX_PREFIX)


def test_every_log_group_has_retention(synthesized: Synthesized) -> None:
    log_groups = synthesized.of_type("AWS::Logs::LogGroup")
    assert log_groups
    for log_group in log_groups.values():
        assert log_group["Properties"]["RetentionInDays"] == RETENTION_DAYS[synthesized.config.log_retention.value]


def test_alarm_topic_is_encrypted_and_tls_only(synthesized: Synthesized) -> None:
    (topic_id, topic), *_ = synthesized.of_type("AWS::SNS::Topic").items()
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    assert synthesized.resources[key_id]["Properties"]["EnableKeyRotation"] is True
    (policy,) = synthesized.of_type("AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"] == TLS_ONLY for s in statements)
    assert {"Ref": topic_id} in policy["Properties"]["Topics"]


def test_alarms_cover_the_api_every_function_providers_and_tasks(synthesized: Synthesized) -> None:
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"] for a in synthesized.of_type("AWS::CloudWatch::Alarm").values()
    }
    prefix = f"earshot-{synthesized.stage}"
    expected = {
        f"{prefix}-api-5xx-rate",
        f"{prefix}-provider-errors",
        f"{prefix}-task-executions-unexpected",
        f"{prefix}-upload-events-failed",
    }
    for name in synthesized.config.memory_mb:
        expected |= {f"{prefix}-{name}-errors", f"{prefix}-{name}-throttles"}
    assert set(alarms) == expected
    for alarm in alarms.values():
        assert alarm["AlarmActions"] and alarm["OKActions"]
        assert alarm["TreatMissingData"] == "notBreaching"
