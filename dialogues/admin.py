from django.contrib import admin

from dialogues.library.models import AgentProfile, ImportJob, Relationship, Scenario, Task
from dialogues.runs.models import Dialogue, LLMCall, Run, StepRating, Turn


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


# --- runs and dialogues: read-only here (the engine writes them) ------------------------------------------


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ["id", "name", "variant", "model", "simulated", "status", "created_at"]
    list_filter = ["variant", "simulated", "status", "backend"]
    search_fields = ["name", "model"]
    exclude = ["tasks"]


@admin.register(Dialogue)
class DialogueAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "run",
        "task",
        "attempt",
        "status",
        "final_goal_c",
        "nsi_used",
        "filter_passed",
        "kept",
        "simulated",
    ]
    list_filter = ["status", "kept", "filter_passed", "nsi_used", "simulated", "run"]
    list_select_related = ["run", "task__scenario", "task__agent1", "task__agent2"]
    search_fields = ["task__scenario__codename", "failure_reason"]


@admin.register(Turn)
class TurnAdmin(ReadOnlyAdmin):
    list_display = ["dialogue", "index", "speaker", "branch", "nsi_step", "proposal", "action_type", "forced"]
    list_filter = ["branch", "nsi_step", "proposal", "forced", "action_type"]
    search_fields = ["argument"]


@admin.register(StepRating)
class StepRatingAdmin(ReadOnlyAdmin):
    list_display = ["dialogue", "turn", "goal_c", "goal_p", "valid", "requested", "terminate", "closing"]


@admin.register(LLMCall)
class LLMCallAdmin(ReadOnlyAdmin):
    list_display = [
        "dialogue",
        "turn_index",
        "purpose",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "latency_ms",
        "transport_retries",
        "error",
    ]
    list_filter = ["purpose", "model"]
    search_fields = ["error"]
