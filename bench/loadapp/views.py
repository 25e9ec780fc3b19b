from decimal import Decimal

from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import BenchRow


class ConstantView(APIView):
    """Authenticated (the consumer app's session token), returns a constant."""

    def get(self, request):
        return Response({"ok": True})


class RowSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=40)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=Decimal("0.01"))


class InsertView(APIView):
    """Authenticated, validates a small body, inserts one row."""

    def post(self, request):
        body = RowSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        row = BenchRow.objects.create(user=request.user, **body.validated_data)
        return Response({"id": row.pk}, status=status.HTTP_201_CREATED)
