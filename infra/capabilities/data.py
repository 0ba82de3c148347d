"""DynamoDB tables, built from the one table layout in ``earshot.adapters.dynamo_layout``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from earshot.adapters.dynamo_layout import TABLES, Key, TableSpec
from infra.naming import pascal_id

_ATTRIBUTE_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER}


def _attribute(key: Key) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_ATTRIBUTE_TYPES[key.type])


class Data(Construct):
    """One on-demand table per ``TableSpec``: encrypted, point-in-time recoverable, TTL where the layout says."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        removal_policy: RemovalPolicy,
        point_in_time_recovery: bool,
        deletion_protection: bool,
        specs: Sequence[TableSpec] = TABLES,
    ) -> None:
        super().__init__(scope, construct_id)
        self._removal_policy = removal_policy
        self._point_in_time_recovery = point_in_time_recovery
        self._deletion_protection = deletion_protection
        self.specs: Mapping[str, TableSpec] = {spec.logical: spec for spec in specs}
        self.tables: Mapping[str, dynamodb.Table] = {spec.logical: self._table(spec) for spec in specs}

    def _table(self, spec: TableSpec) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            pascal_id(spec.logical),
            partition_key=_attribute(spec.partition),
            sort_key=_attribute(spec.sort) if spec.sort else None,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            # The AWS managed key: encrypted at rest with key use visible in CloudTrail, and nothing to rotate.
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=self._point_in_time_recovery
            ),
            time_to_live_attribute=spec.ttl_attribute,
            deletion_protection=self._deletion_protection,
            removal_policy=self._removal_policy,
        )
        for index in spec.indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_attribute(index.partition),
                sort_key=_attribute(index.sort) if index.sort else None,
                projection_type=dynamodb.ProjectionType.ALL,  # as create_table_kwargs: the adapters read whole items
            )
        return table
