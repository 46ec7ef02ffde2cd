from django.contrib import admin

from dialogues.models import AgentProfile, ImportJob, Relationship, Scenario, Task


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin):
    list_display = ["full_name", "age", "occupation", "gender", "mbti", "source", "external_id"]
    list_filter = ["source", "gender"]
    search_fields = ["first_name", "last_name", "occupation", "external_id"]


@admin.register(Scenario)
class ScenarioAdmin(admin.ModelAdmin):
    list_display = ["codename", "source", "relationship", "external_id"]
    list_filter = ["source", "relationship"]
    search_fields = ["codename", "text", "agent1_goal", "agent2_goal", "external_id"]


@admin.register(Relationship)
class RelationshipAdmin(admin.ModelAdmin):
    list_display = ["external_id", "agent1", "agent2", "relationship"]
    list_filter = ["relationship"]
    search_fields = ["external_id", "agent1__first_name", "agent2__first_name", "background_story"]
    raw_id_fields = ["agent1", "agent2"]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["external_id", "scenario", "agent1", "agent2", "hard", "source", "split"]
    list_filter = ["hard", "source", "split", "scenario__relationship"]
    search_fields = ["external_id", "scenario__codename", "agent1__first_name", "agent2__first_name"]
    raw_id_fields = ["scenario", "agent1", "agent2"]
    list_select_related = ["scenario", "agent1", "agent2"]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "origin", "status", "split", "source", "created_by", "created_at", "finished_at"]
    list_filter = ["status", "origin", "split"]
    readonly_fields = ["counts", "problems", "files"]
