#!/usr/bin/env python3
"""Benchmark what single AWS API calls cost against the emulator, one after another, client (boto3) and
server in this process: the calls the JITR activation function makes, and its claim in DynamoDB.

    .venv/bin/python scripts/bench_api_calls.py --calls 200 --rounds 3

Prints the median over rounds of the mean milliseconds a call, per kind, and one JSON line last. Each
answer is checked to be the one expected (the claim write refused as a duplicate, the certificate not
found), so an error path cannot pass for a fast one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="calls of each kind a round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import boto3
    from botocore.exceptions import ClientError

    from emulator.local import LocalIot, Options

    with tempfile.TemporaryDirectory() as state, LocalIot(Options(state_dir=Path(state))) as iot:
        os.environ.update(iot.environment())
        ddb = boto3.client("dynamodb", region_name=iot.info()["region"])
        iotc = boto3.client("iot", region_name=iot.info()["region"])
        key = [{"AttributeName": "certificateId", "KeyType": "HASH"}]
        ddb.create_table(
            TableName="claims",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "certificateId", "AttributeType": "S"}],
            KeySchema=key,
        )
        held = {"certificateId": {"S": "c"}, "owner": {"S": "o"}, "leaseUntil": {"N": str(int(time.time()) + 3600)}}
        ddb.put_item(TableName="claims", Item=held)

        def duplicate_claim() -> None:
            try:
                ddb.put_item(
                    TableName="claims",
                    Item=held,
                    ConditionExpression="attribute_not_exists(certificateId) OR leaseUntil < :now",
                    ExpressionAttributeValues={":now": {"N": str(int(time.time()))}},
                )
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"
                return
            raise SystemExit("the claim write was not refused")

        def unknown_certificate() -> None:
            try:
                iotc.describe_certificate(certificateId="a" * 64)
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "ResourceNotFoundException"
                return
            raise SystemExit("DescribeCertificate found a certificate that does not exist")

        kinds = {
            "dynamodb PutItem, condition refused (a duplicate claim)": duplicate_claim,
            "dynamodb GetItem, consistent": lambda: ddb.get_item(
                TableName="claims", Key={"certificateId": {"S": "c"}}, ConsistentRead=True
            )["Item"],
            "iot DescribeCertificate, not found": unknown_certificate,
            "iot ListThings": lambda: iotc.list_things(),
        }
        results: dict[str, list[float]] = {name: [] for name in kinds}
        for _ in range(args.rounds):
            for name, call in kinds.items():  # interleaved: each round measures every kind once
                started = time.perf_counter()
                for _ in range(args.calls):
                    call()
                results[name].append((time.perf_counter() - started) / args.calls * 1000)
    medians = {name: round(statistics.median(values), 2) for name, values in results.items()}
    for name, value in medians.items():
        print(f"{value:>7.2f} ms  {name}")
    print(json.dumps({"calls": args.calls, "rounds": args.rounds, "ms_per_call": medians}))


if __name__ == "__main__":
    main()
