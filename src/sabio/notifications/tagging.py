"""Topic tags: TagResource, UntagResource and ListTagsForResource, with SNS's limits and its
`ResourceNotFound` (not the `NotFound` of the other operations) for a topic that is not there."""

from __future__ import annotations

from sabio.errors import SabioError
from sabio.notifications.errors import NotFound, invalid
from sabio.notifications.service import Topics

MAX_TAGS = 50


class ResourceNotFound(SabioError):
    code = "ResourceNotFound"
    status = 404


class TagLimitExceeded(SabioError):
    code = "TagLimitExceeded"
    status = 400


def check_tags(tags: list[dict[str, str]]) -> dict[str, str]:
    for tag in tags:
        if not 1 <= len(tag.get("Key", "")) <= 128 or len(tag.get("Value", "")) > 256:
            raise invalid("Tags", "Tag keys are 1 to 128 characters, values up to 256")
    return {tag["Key"]: tag.get("Value", "") for tag in tags}


class TopicTags:
    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self.repository = topics.repository

    def listed(self, arn: str) -> list[dict[str, str]]:
        self._topic(arn)
        return [{"Key": k, "Value": v} for k, v in self.repository.tags(arn).items()]

    def tag(self, arn: str, tags: list[dict[str, str]]) -> None:
        self._topic(arn)
        wanted = check_tags(tags)
        if len(self.repository.tags(arn) | wanted) > MAX_TAGS:
            raise TagLimitExceeded("Could not complete request: tag quota of per resource exceeded")
        self.repository.set_tags(arn, wanted)

    def untag(self, arn: str, keys: list[str]) -> None:
        self._topic(arn)
        self.repository.delete_tags(arn, keys)

    def _topic(self, arn: str) -> None:
        try:
            self.topics.topic(arn, "ResourceArn")
        except NotFound:
            raise ResourceNotFound("Resource does not exist") from None
