"""LoginThrottle moves here from the dialogues app with its rows: the model is added to this app's state on the
table it already has, then that table is renamed to this app's name (dialogues drops the model from its state only,
in dialogues 0015)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("dialogues", "0014_dialogue_steps_update_no_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="LoginThrottle",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("key", models.CharField(help_text="user:<name> or ip:<address>", max_length=300, unique=True)),
                        ("failures", models.PositiveIntegerField(default=0)),
                        ("window_start", models.DateTimeField()),
                        ("locked_until", models.DateTimeField(blank=True, null=True)),
                    ],
                    options={"db_table": "dialogues_loginthrottle"},
                ),
            ],
        ),
        migrations.AlterModelTable(name="loginthrottle", table=None),  # renames the table to omega_web_loginthrottle
    ]
