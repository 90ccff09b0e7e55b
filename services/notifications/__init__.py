"""WeChat subscribe messages (订阅消息) to applicants about their cases, sent through the
outbox: accepted, correction needed, decided, certificate ready, overdue apology, rectified."""
