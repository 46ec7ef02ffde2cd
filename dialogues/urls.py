from django.urls import path

from dialogues.views import imports, tasks

urlpatterns = [
    path("tasks/", tasks.task_list, name="task_list"),
    path("tasks/<int:pk>/", tasks.task_detail, name="task_detail"),
    path("tasks/<int:pk>/context/<slug:viewer>/", tasks.task_context, name="task_context"),
    path("agents/<int:pk>/", tasks.agent_detail, name="agent_detail"),
    path("imports/", imports.import_list, name="import_list"),
    path("imports/new/", imports.import_create, name="import_create"),
    path("imports/<int:pk>/", imports.import_detail, name="import_detail"),
]
