"""WeChat: the client onestop uses (`client`) and the shipped fake server (`fake_server`).

Only the client is imported here; the fake pulls in FastAPI and is imported where needed.
"""

from services.wechat.client import (
    FaceVerifyFailed,
    InMemoryTokenCache,
    RedisTokenCache,
    SubscribeMessageInvalid,
    SubscribeRefused,
    TokenCache,
    WeChatClient,
    WeChatCodeInvalid,
    WeChatError,
    WeChatRateLimited,
    WeChatSession,
    WeChatUnavailable,
    WeChatUserBlocked,
    cert_hash,
    get_wechat_client,
)

__all__ = [
    "FaceVerifyFailed",
    "InMemoryTokenCache",
    "RedisTokenCache",
    "SubscribeMessageInvalid",
    "SubscribeRefused",
    "TokenCache",
    "WeChatClient",
    "WeChatCodeInvalid",
    "WeChatError",
    "WeChatRateLimited",
    "WeChatSession",
    "WeChatUnavailable",
    "WeChatUserBlocked",
    "cert_hash",
    "get_wechat_client",
]
