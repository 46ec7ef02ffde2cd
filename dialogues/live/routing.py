"""The websocket URLs (mounted by omega_web.asgi): one consumer per live page."""

from django.urls import path

from dialogues.live import consumers

websocket_urlpatterns = [
    path("ws/imports/<int:pk>/", consumers.ImportJobConsumer.as_asgi()),
    path("ws/dialogues/<int:pk>/", consumers.DialogueConsumer.as_asgi()),
    path("ws/runs/<int:pk>/", consumers.RunConsumer.as_asgi()),
    path("ws/runs/", consumers.RunsListConsumer.as_asgi()),
]
