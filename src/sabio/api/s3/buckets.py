"""ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation, GetBucketVersioning."""

from __future__ import annotations

from sabio.api.s3.bodies import read_small
from sabio.api.s3.names import check_bucket_name, existing_bucket
from sabio.api.s3.wire import S3Request, respond, respond_xml
from sabio.api.s3.xml import OWNER, document, element, iso_time, parse
from sabio.artifacts.store import BucketInfo

_MAX_CONFIGURATION = 64 * 1024


async def list_buckets(request: S3Request) -> None:
    buckets: list[BucketInfo] = await request.run(request.store.list_buckets)
    prefix = request.query.get("prefix", "")
    entries = "".join(
        f"<Bucket>{element('Name', b.name)}{element('CreationDate', iso_time(b.created))}"
        f"{element('BucketRegion', request.region)}</Bucket>"
        for b in buckets
        if b.name.startswith(prefix)
    )
    body = [OWNER, f"<Buckets>{entries}</Buckets>"]
    if prefix:
        body.append(element("Prefix", prefix))
    await respond_xml(request, document("ListAllMyBucketsResult", body))


async def create_bucket(request: S3Request) -> None:
    check_bucket_name(request.bucket)
    configuration = await read_small(request, _MAX_CONFIGURATION)
    if configuration.strip():
        parse(configuration, "CreateBucketConfiguration")  # the location is accepted, not used
    await request.run(request.store.create_bucket, request.bucket)
    await respond(request, 200, [("location", f"/{request.bucket}")])


async def head_bucket(request: S3Request) -> None:
    await existing_bucket(request)
    await respond(request, 200, [("x-amz-bucket-region", request.region)])


async def delete_bucket(request: S3Request) -> None:
    check_bucket_name(request.bucket)
    await request.run(request.store.delete_bucket, request.bucket)
    await respond(request, 204)


async def get_bucket_location(request: S3Request) -> None:
    await existing_bucket(request)
    # us-east-1 is the empty constraint, as S3 answers it.
    region = "" if request.region == "us-east-1" else request.region
    await respond_xml(request, document("LocationConstraint", [region]))


async def get_bucket_versioning(request: S3Request) -> None:
    """The store keeps one version per key: versioning has never been enabled."""
    await existing_bucket(request)
    await respond_xml(request, document("VersioningConfiguration", []))
