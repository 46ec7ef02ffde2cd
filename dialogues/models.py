"""Every model of the dialogues app, for Django to find: each area keeps its own in `<area>/models.py`.

Code inside the app imports models from their area (`dialogues.runs.models`), never from here.
"""

from dialogues.annotation.models import (
    Adjudication,
    CalibrationQueue,
    Correction,
    Decision,
    DialogueAnnotation,
    EpisodeAnnotation,
    Label,
    RelevanceAnnotation,
    StepRatingAnnotation,
    TurnAnnotation,
)
from dialogues.corpora.models import Corpus, CorpusVersion, VersionStatus
from dialogues.library.models import (
    AgentProfile,
    ImportFile,
    ImportJob,
    ImportKind,
    ImportStatus,
    Relationship,
    RelationshipType,
    Scenario,
    Split,
    Task,
)
from dialogues.prompt_sets.models import PromptSet
from dialogues.runs.models import (
    Branch,
    Dialogue,
    DialogueStatus,
    Instance,
    LLMCall,
    Run,
    RunKind,
    RunStatus,
    Setting,
    StepRating,
    Turn,
)

__all__ = [
    "Adjudication",
    "AgentProfile",
    "Branch",
    "CalibrationQueue",
    "Corpus",
    "CorpusVersion",
    "Correction",
    "Decision",
    "Dialogue",
    "DialogueAnnotation",
    "DialogueStatus",
    "EpisodeAnnotation",
    "ImportFile",
    "ImportJob",
    "ImportKind",
    "ImportStatus",
    "Instance",
    "LLMCall",
    "Label",
    "PromptSet",
    "Relationship",
    "RelationshipType",
    "RelevanceAnnotation",
    "Run",
    "RunKind",
    "RunStatus",
    "Scenario",
    "Setting",
    "Split",
    "StepRating",
    "StepRatingAnnotation",
    "Task",
    "Turn",
    "TurnAnnotation",
    "VersionStatus",
]
