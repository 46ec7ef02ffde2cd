"""The default label set (annotation). Curators edit it afterwards; this only adds what is missing."""

from django.db import migrations

from dialogues.annotation.labels import ensure_default_labels


def add_labels(apps, schema_editor):
    ensure_default_labels(apps.get_model("dialogues", "Label"))


class Migration(migrations.Migration):
    dependencies = [("dialogues", "0006_annotations")]
    operations = [migrations.RunPython(add_labels, migrations.RunPython.noop)]
