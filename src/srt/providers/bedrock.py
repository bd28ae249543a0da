"""Amazon Bedrock Converse / ConverseStream, with a Bedrock API key or SigV4."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from .._core import Body
from ..errors import ConfigError
from ..wire.notfound import NotFound
from .base import Options, Provider, _quoted, check_key
from .base import base_url as url_of
from .policy import Missing, shown_url
from .sigv4 import AwsCredentials, sign
from .transport import HTTPRequest

__all__ = ["Bedrock"]

#: An AWS region's name (``us-east-1``, ``eu-central-2``): it goes into the host name.
_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


class Bedrock(Provider):
    """Amazon Bedrock Converse / ConverseStream.

    Auth: a Bedrock API key as a bearer token (``api_key=`` or
    ``AWS_BEARER_TOKEN_BEDROCK``), else SigV4 with ``credentials=`` or the standard
    ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``.
    """

    name = "bedrock"
    label = "Bedrock"
    format = "bedrock.converse"
    default_model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"

    @classmethod
    def from_options(cls, options: Options) -> tuple[Provider, str | None]:
        """``srt chat --provider bedrock``: ``--region`` (or ``$AWS_REGION``), the key or
        AWS credentials from the environment, ``--base-url`` as ``endpoint_url``."""
        provider = cls(region=options.region, api_key=options.key, endpoint_url=options.base_url)
        return provider, options.model or cls.default_model

    def __init__(
        self,
        *,
        region: str | None = None,
        api_key: str | None = None,
        credentials: AwsCredentials | None = None,
        endpoint_url: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not self.region:
            raise ConfigError("Bedrock needs a region: pass region= or set AWS_REGION")
        if not isinstance(self.region, str) or not _REGION.fullmatch(self.region):
            got = (
                "a str that is not one (lower-case letters and digits between dashes)"
                if isinstance(self.region, str)
                else type(self.region).__name__
            )
            raise ConfigError(
                f"Bedrock's region must be an AWS region name such as 'us-east-1', got {got}"
            )
        if credentials is not None and not isinstance(credentials, AwsCredentials):
            raise ConfigError(
                "credentials must be an srt.AwsCredentials(access_key_id, "
                f"secret_access_key, session_token=None), got {type(credentials).__name__}"
            )
        self.endpoint_url = url_of(
            endpoint_url,
            None,
            f"https://bedrock-runtime.{self.region}.amazonaws.com",
            "endpoint_url",
        )
        self.__key = check_key(
            api_key if api_key is not None else os.environ.get("AWS_BEARER_TOKEN_BEDROCK"),
            "Bedrock",
        )
        self.__creds = None if self.__key else (credentials or AwsCredentials.from_env())
        if not self.__key and self.__creds is None:
            raise ConfigError(
                "Bedrock needs an API key (api_key= or AWS_BEARER_TOKEN_BEDROCK) "
                "or AWS credentials (credentials= or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
            )
        secrets = [self.__key]
        if self.__creds is not None:
            secrets += [self.__creds.secret_access_key, self.__creds.session_token]
        self._secrets = tuple(s for s in secrets if s)

    def stream_params(self) -> dict[str, Any]:
        """None: Bedrock streams by its URL (``converse-stream``), not a body parameter."""
        return {}

    def url(self, model: str, stream: bool) -> str:
        """The Converse (or ConverseStream) URL of ``model`` under ``endpoint_url``."""
        op = "converse-stream" if stream else "converse"
        return f"{self.endpoint_url}/model/{quote(model, safe='')}/{op}"

    def request(
        self,
        model: str,
        body: bytes | Body,
        stream: bool,
        params: Mapping[str, Any] | None = None,
    ) -> HTTPRequest:
        """The HTTP request for ``body``, with the key as a bearer token or signed with
        SigV4 (the signature covers the body, so it is made per request)."""
        url = self.url(model, stream)
        headers = {"content-type": "application/json", "accept": "application/json"}
        if stream:
            headers["accept"] = "application/vnd.amazon.eventstream"
        if self.__key:
            headers["authorization"] = f"Bearer {self.__key}"
        else:
            assert self.__creds is not None
            headers.update(sign("POST", url, headers, body, self.__creds, self.region or ""))
        return HTTPRequest(
            "POST",
            url,
            headers,
            body,
            stream=stream,
            secrets=self._secrets,
            not_found=self.not_found(model),
        )

    def missing(self, found: NotFound, model: str) -> Missing:
        """Bedrock's words: the model id or inference profile in this region, else the
        endpoint."""
        if found.kind == "model":
            hint = (
                f"Bedrock has no model {_quoted(model)} in {self.region}; check the model id "
                "(or the inference profile id, such as 'us.' + the model id, where the model "
                "needs one) and that the model is offered in this region"
            )
            return Missing(hint, model, self.name)
        base = shown_url(self.endpoint_url, self._secrets)
        return Missing(f"Bedrock at {base} serves no such path; check endpoint_url")
