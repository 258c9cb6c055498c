"""AddTags, ListTags, DeleteTags."""

from __future__ import annotations

from typing import Any

from sabio import arns
from sabio.errors import ResourceLimitExceededError, ValidationError
from sabio.listing import decode_token, encode_token
from sabio.resources import BY_ARN_TYPE, Catalog, tags_to_dict
from sabio.store.entities import Resource

MAX_TAGS = 50


class TagService:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def operations(self) -> dict[str, Any]:
        return {
            "AddTags": self.add_tags,
            "ListTags": self.list_tags,
            "DeleteTags": self.delete_tags,
        }

    def _resource(self, arn: str) -> Resource:
        parsed = arns.parse(arn)
        kind = BY_ARN_TYPE.get(parsed[0]) if parsed else None
        resource = None
        if parsed and kind and arn.lower() == self.catalog.arn(kind, parsed[1]).lower():
            resource = self.catalog.repository.get(kind.key, parsed[1])
        if resource is None:
            noun = kind.noun if kind else "resource"
            raise ValidationError(f'Could not find {noun} "{arn}".')
        return resource

    def add_tags(self, request: dict[str, Any]) -> dict[str, Any]:
        resource = self._resource(request["ResourceArn"])
        new = tags_to_dict(request["Tags"])
        existing = self.catalog.repository.tags(resource.arn)
        if len(existing | new) > MAX_TAGS:
            raise ResourceLimitExceededError(
                f"A resource can have at most {MAX_TAGS} tags; {resource.arn} would have "
                f"{len(existing | new)}."
            )
        self.catalog.repository.set_tags(resource.arn, new)
        return {"Tags": [{"Key": k, "Value": v} for k, v in new.items()]}

    def list_tags(self, request: dict[str, Any]) -> dict[str, Any]:
        resource = self._resource(request["ResourceArn"])
        tags = list(self.catalog.repository.tags(resource.arn).items())
        offset = decode_token(request.get("NextToken"), "tags")
        limit = int(request.get("MaxResults") or 50)
        page = tags[offset : offset + limit]
        response: dict[str, Any] = {"Tags": [{"Key": k, "Value": v} for k, v in page]}
        if offset + limit < len(tags):
            response["NextToken"] = encode_token(offset + limit, "tags")
        return response

    def delete_tags(self, request: dict[str, Any]) -> dict[str, Any]:
        resource = self._resource(request["ResourceArn"])
        self.catalog.repository.delete_tags(resource.arn, list(request["TagKeys"]))
        return {}
