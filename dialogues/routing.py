from django.urls import path

from dialogues import consumers

websocket_urlpatterns = [
    path("ws/imports/<int:pk>/", consumers.ImportJobConsumer.as_asgi()),
]
